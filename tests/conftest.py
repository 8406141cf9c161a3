"""Shared fixtures: a tiny random BERT made from the tests' own texts, and the real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spacy_bertcls import feature_store
from spacy_bertcls.testing import make_tiny_bert

# The disk store of frozen features is off for the tests (and the commands they start): a
# store filled by an earlier run, or by a training running beside them, would skip encoding
# and change what they measure. tests/test_feature_store.py turns it on in a folder of its own.
os.environ[feature_store.CACHE_ENV] = "off"

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SMS_FILE = SHARED_DATA / "sms_spam" / "SMSSpamCollection.tsv"
TWEETS_FILE = SHARED_DATA / "airline_tweets" / "Tweets.csv"

HAM = [
    "are we still meeting for lunch today",
    "call me when you get home please",
    "i will be late for dinner sorry",
    "thanks for the lovely birthday present",
    "can you pick up some milk on the way",
    "see you at the station at six",
    "how was the exam this morning",
    "the meeting moved to friday afternoon",
    "did you remember to feed the cat",
    "happy new year to you and the family",
    "let me know when you are free to talk",
    "my train is delayed again today",
]
SPAM = [
    "win a free prize now call 0800 claim",
    "urgent you have won cash reply win now",
    "free entry to win a holiday text claim",
    "claim your free ringtone now reply stop",
    "congratulations you won a prize call now",
    "cash prize waiting text win to claim free",
]
TEXTS = HAM + SPAM


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory, monkeypatch):
    """Each test records the CSV files it writes with formula guards in a cache of its own
    (subprocesses inherit it), never in the user's ~/.cache."""
    from spacy_bertcls.outputs import CACHE_DIR_ENV

    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> str:
    """Path of a tiny random BERT, as a string for the ``encoder`` setting."""
    return str(make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), TEXTS))


@pytest.fixture(scope="session")
def sms_file() -> Path:
    if not SMS_FILE.exists():
        pytest.skip(f"{SMS_FILE} is absent (../shared/data is not beside the checkout)")
    return SMS_FILE


@pytest.fixture(scope="session")
def tweets_file() -> Path:
    if not TWEETS_FILE.exists():
        pytest.skip(f"{TWEETS_FILE} is absent (../shared/data is not beside the checkout)")
    return TWEETS_FILE
