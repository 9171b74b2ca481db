"""Numbers in a KServe V1 instance are data, not text, under an object's keys too (a decision, kept by this test).
KServe's own predictors (sklearn, xgboost, lightgbm: `kserve.utils.get_predict_input`) read an instance that is an
object as a pandas DataFrame row, its numbers features. The detectors read a 10 to 13 digit integer as a phone
number: read as text, an ordinary feature row (a timestamp in milliseconds) would be labelled `pii:phone` on every
call, and refused for any purpose a phone zone forbids (a double, `0.123456789`, was one too before 2026-12-04). So a card
number sent as a JSON number in an instance's object is not found (its strings are: a card as a string is)."""

from __future__ import annotations

import orjson

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.protocols.kserve import read_request
from proxy.protocols.oip import number_text

ROW = {"sepal_length": [0.123456789], "event_ms": [1701600000123], "customer": [4111111111111111]}


def test_an_instance_objects_numbers_are_features_not_text() -> None:
    detectors = Detectors([DetectorSpec(name) for name in ("email", "phone", "credit_card", "ip_address")])
    # what reading them as text would label: an ordinary feature row as a phone number
    assert detectors.scan(number_text(1701600000123)) == {"pii:phone"}
    request = read_request("iris", "predict", orjson.dumps({"instances": [ROW]}), "application/json")
    assert request.texts == ("sepal_length", "event_ms", "customer"), request  # the column names only
    assert detectors.scan_all(request.texts) == frozenset()
    # a card as a string is read; any other key of the body (parameters) has its numbers read as text
    as_text = read_request("m", "predict", orjson.dumps({"instances": [{"card": "4111111111111111"}]}), None)
    assert "4111111111111111" in as_text.texts
    beside = read_request("m", "predict", orjson.dumps({"instances": [[1.0]], "card": 4111111111111111}), None)
    assert "4111111111111111" in beside.texts
