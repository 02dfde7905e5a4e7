"""What each profile scores an answer by: the names it declares are the checks it returns."""

from __future__ import annotations

import pytest

from trainer.config.schema import ProfileConfig
from trainer.eval.generation_eval import score_shares
from trainer.profiles import PROFILES
from trainer.profiles.emoji_think import EmojiThinkProfile
from trainer.profiles.regime3 import Regime3Profile


def profile(name: str):
    return PROFILES[name](ProfileConfig(name=name), seed=0)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_scores_exactly_the_metrics_it_declares(name):
    checks = profile(name).score_answer("an answer", "the reference")
    assert tuple(checks) == profile(name).eval_metrics
    assert "exact_match" in checks


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_exact_match_ignores_case_and_runs_of_whitespace_only(name):
    scored = profile(name)
    assert scored.score_answer("  The answer\n is  4. ", "the answer is 4.")["exact_match"]
    assert not scored.score_answer("The answer is 5.", "The answer is 4.")["exact_match"]


def test_regime3_scores_well_formed_answer_markers_apart_from_correctness():
    regime3 = Regime3Profile(ProfileConfig(name="regime3"), seed=0)
    reference = "<<ANS_START>> (add 2 3) = 5 <<ANS_END>>"
    assert regime3.score_answer("<<ANS_START>> (add 2 3) = 6 <<ANS_END>>", reference) == {
        "exact_match": False,
        "well_formed_answer": True,
    }
    assert not regime3.score_answer("<<ANS_START>> (add 2 3) = 5", reference)["well_formed_answer"]


def test_emoji_think_scores_the_thinking_and_stop_runs_the_reference_was_told():
    emoji = EmojiThinkProfile(ProfileConfig(name="emoji_think"), seed=0)
    reference = "💡💡💡\nThe answer is 4.\n⏹️⏹️"
    assert emoji.score_answer("💡💡💡\nFour.\n⏹️⏹️\n", reference) == {
        "exact_match": False,
        "thinks_as_told": True,
        "stops_as_told": True,
    }
    wrong = emoji.score_answer("💡💡\nFour.\n⏹️⏹️⏹️", reference)
    assert not wrong["thinks_as_told"] and not wrong["stops_as_told"]
    assert not emoji.score_answer("Four.", reference)["thinks_as_told"]
    # An example outside the contract (emoji_ratio < 1) is told neither.
    plain = emoji.score_answer("Four.", "The answer is 4.")
    assert plain["thinks_as_told"] and plain["stops_as_told"]


def test_a_metric_is_the_share_of_answers_that_pass_it():
    rows = [{"checks": {"exact_match": passed}} for passed in (True, False, False, True)]
    assert score_shares(rows, ("exact_match",)) == {"eval/exact_match": 0.5}
