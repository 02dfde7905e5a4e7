"""Data: read chat records, apply the profile, tokenize with assistant-only labels."""
