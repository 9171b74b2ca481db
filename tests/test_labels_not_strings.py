"""A label that is not a string is a 400 in both builds (compiled, a `list[str]` annotation made it a
TypeError, a 500, before the function's own check could answer)."""

import pytest

from proxy.errors import InvalidRequest
from proxy.labels import check_labels


@pytest.mark.parametrize("given", [3, None, ["nested"], {"k": "v"}, 1.5, True])
def test_a_label_that_is_not_a_string_is_refused_as_such(given: object) -> None:
    with pytest.raises(InvalidRequest, match="every label must be a string"):
        check_labels(["fine", given], source="data_labels")


def test_labels_are_normalised_and_kept() -> None:
    assert check_labels(("Fine", " pii:email ", ""), source="x-data-labels") == frozenset({"fine", "pii:email"})
