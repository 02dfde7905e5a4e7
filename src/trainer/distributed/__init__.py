"""Several processes for one job: DDP/FSDP through the HF Trainer, started by torchrun (or
accelerate), all ranks writing into one run directory that rank 0 owns."""
