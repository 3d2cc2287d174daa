"""Redis replies checked into the types the service expects (coupon/core/replies.py)."""

from __future__ import annotations

import pytest

from coupon.core import replies


def test_text_and_integer_take_what_a_decoding_client_answers():
    assert replies.text("0-1") == "0-1"
    assert replies.integer("42") == 42 and replies.integer(7) == 7
    assert replies.integers(["3", "1", 2]) == [3, 1, 2]


def test_texts_and_scored_take_maps_and_pairs():
    assert replies.texts({"user": "7", "seat": "1"}) == {"user": "7", "seat": "1"}
    assert replies.scored([("7", 1.5), ["8", 2.0]]) == [("7", 1.5), ("8", 2.0)]


@pytest.mark.parametrize(
    ("check", "reply"),
    [
        (replies.text, b"0-1"),  # an undecoded reply
        (replies.text, None),
        (replies.integer, None),
        (replies.integer, [1]),
        (replies.texts, None),
        (replies.texts, {"user": None}),
        (replies.scored, ["7"]),  # members without their scores
        (replies.scored, [("7", "1.5")]),  # a score not cast to float
    ],
)
def test_a_reply_of_another_shape_raises_type_error(check, reply):
    with pytest.raises(TypeError):
        check(reply)
