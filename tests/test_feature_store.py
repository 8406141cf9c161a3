"""The disk store of frozen-encoder features (spacy_bertcls.feature_store) and its use by
frozen training, on the tiny random BERT."""

from __future__ import annotations

import numpy
import pytest
import spacy
from conftest import TEXTS
from test_textcat import make_examples, make_nlp, probabilities, train

from spacy_bertcls import BertclsError, feature_store, outputs
from spacy_bertcls.architectures import disk_bucket, get_shim, text_features
from spacy_bertcls.feature_store import FeatureStore, text_keys
from spacy_bertcls.testing import make_tiny_bert


@pytest.fixture(autouse=True)
def store_dir(tmp_path, monkeypatch):
    """Each test has a store folder of its own."""
    root = tmp_path / "features"
    monkeypatch.setenv(feature_store.CACHE_ENV, str(root))
    monkeypatch.delenv(feature_store.SIZE_ENV, raising=False)
    return root


def count_encoded(nlp) -> list[int]:
    """Rows the encoder of ``nlp`` runs from now on (one entry per forward pass)."""
    module = get_shim(nlp.get_pipe("bert_textcat").model).module
    rows: list[int] = []
    module.encoder.register_forward_hook(
        lambda mod, args, kwargs, out: rows.append(kwargs["input_ids"].shape[0]),
        with_kwargs=True,
    )
    return rows


def frozen_nlp(encoder: str, **model):
    nlp = make_nlp(encoder, freeze_encoder=True, model=model)
    nlp.initialize(lambda: make_examples(nlp))
    return nlp


def train_counting(nlp, examples, epochs: int = 2) -> list[int]:
    """``test_textcat.train``, returning the rows the encoder ran from initialize on."""
    spacy.util.fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples)
    rows = count_encoded(nlp)
    for _ in range(epochs):
        for start in range(0, len(examples), 8):
            nlp.update(examples[start : start + 8], sgd=optimizer)
    return rows


def test_second_training_encodes_nothing_and_predicts_the_same(
    tiny_encoder, monkeypatch, store_dir
):
    monkeypatch.setenv(feature_store.CACHE_ENV, "off")
    off = make_nlp(tiny_encoder, freeze_encoder=True)
    train(off, make_examples(off), epochs=2)
    expected = probabilities(off, TEXTS)
    monkeypatch.setenv(feature_store.CACHE_ENV, str(store_dir))

    store = feature_store.default_store()
    encoded, predicted = [], []
    for _ in range(2):
        nlp = make_nlp(tiny_encoder, freeze_encoder=True)
        encoded.append(sum(train_counting(nlp, make_examples(nlp))))
        predicted.append(probabilities(nlp, TEXTS))
    assert encoded == [len(set(TEXTS)), 0]  # cold: every text once; warm: none
    assert store.stats.hits == len(set(TEXTS))
    for probs in predicted:
        numpy.testing.assert_array_equal(probs, expected)


def test_features_survive_the_process_on_disk(tiny_encoder, store_dir):
    nlp = frozen_nlp(tiny_encoder)
    model = nlp.get_pipe("bert_textcat").model
    first = text_features(model, TEXTS)  # flushes at the end
    assert list(store_dir.glob("*/*.hashes.npy")) and list(store_dir.glob("*/key.json"))
    # A new store object knows only what is on disk, as in a new process.
    described = disk_bucket(get_shim(model)).described
    fresh = FeatureStore(store_dir)
    bucket = fresh.bucket(described["encoder"], described["settings"], described["width"])
    found, vectors = bucket.lookup(text_keys(TEXTS))
    assert found.all() and fresh.stats.hits == len(TEXTS)
    numpy.testing.assert_array_equal(vectors, first)


def test_a_changed_setting_or_encoder_is_a_miss(tiny_encoder, tmp_path):
    text_features(frozen_nlp(tiny_encoder).get_pipe("bert_textcat").model, TEXTS)
    store = feature_store.default_store()
    for changed in ({"max_length": 24}, {"pooling": "cls"}, {"layers": [-1, -2]}):
        before = store.stats.hits
        nlp = frozen_nlp(tiny_encoder, **changed)
        rows = count_encoded(nlp)
        text_features(nlp.get_pipe("bert_textcat").model, TEXTS)
        assert store.stats.hits == before and sum(rows) >= len(TEXTS), changed
    other = str(make_tiny_bert(tmp_path / "other_bert", TEXTS, seed=1))
    nlp = frozen_nlp(other)
    rows = count_encoded(nlp)
    text_features(nlp.get_pipe("bert_textcat").model, TEXTS)
    assert sum(rows) == len(TEXTS)
    # The same settings and encoder again: all hits.
    nlp = frozen_nlp(tiny_encoder)
    rows = count_encoded(nlp)
    text_features(nlp.get_pipe("bert_textcat").model, TEXTS)
    assert rows == []


def test_an_encoder_changed_in_place_gets_a_new_identity(tiny_encoder):
    import torch

    nlp = frozen_nlp(tiny_encoder)
    shim = get_shim(nlp.get_pipe("bert_textcat").model)
    encoder = shim.module.encoder
    before = feature_store.encoder_identity(encoder, shim.tokenizer)
    with torch.no_grad():
        next(encoder.parameters()).add_(1.0)
    assert feature_store.encoder_identity(encoder, shim.tokenizer) != before


def test_whitespace_makes_another_text():
    assert len(set(text_keys(["a b", "a  b", " a b", "a b"]).tolist())) == 3


def write_shard(store: FeatureStore, n: int, width: int = 4, start: int = 0):
    bucket = store.bucket("enc", {"s": 1}, width)
    keys = text_keys(f"text {i}" for i in range(start, start + n))
    bucket.add(keys, numpy.arange(n * width, dtype="f").reshape(n, width) + start)
    bucket.flush()
    return keys


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "delete", "hashes"])
def test_a_damaged_or_missing_shard_is_a_miss(tmp_path, damage):
    root = tmp_path / "store"
    keys = write_shard(FeatureStore(root), 10)
    features = next(root.glob("*/*.features.npy"))
    hashes = next(root.glob("*/*.hashes.npy"))
    if damage == "truncate":
        features.write_bytes(features.read_bytes()[:100])
    elif damage == "garbage":
        features.write_bytes(b"not numpy at all" * 10)
    elif damage == "empty":
        features.write_bytes(b"")
    elif damage == "delete":
        features.unlink()
    else:
        hashes.write_bytes(b"\x93NUMPY garbage")
    store = FeatureStore(root)
    found, vectors = store.bucket("enc", {"s": 1}, 4).lookup(keys)
    assert not found.any() and vectors.shape == (0, 4)
    assert store.stats.misses == 10
    if damage != "hashes":
        assert store.stats.shards_damaged == 1


def test_a_deleted_store_folder_is_a_miss_and_written_again(tmp_path):
    import shutil

    root = tmp_path / "store"
    store = FeatureStore(root)
    keys = write_shard(store, 5)
    bucket = store.bucket("enc", {"s": 1}, 4)
    shutil.rmtree(root)
    found, _ = bucket.lookup(keys)
    assert not found.any()
    write_shard(store, 5)  # recreates the folder
    assert FeatureStore(root).bucket("enc", {"s": 1}, 4).lookup(keys)[0].all()


class Boom:
    ran = False

    def __reduce__(self):
        return (Boom.explode, ())

    @staticmethod
    def explode():
        Boom.ran = True


def test_no_pickle_is_ever_loaded(tmp_path):
    root = tmp_path / "store"
    keys = write_shard(FeatureStore(root), 3)
    for path in root.glob("*/*.npy"):
        numpy.save(path, numpy.array([Boom()], dtype=object), allow_pickle=True)
    store = FeatureStore(root)
    found, _ = store.bucket("enc", {"s": 1}, 4).lookup(keys)
    assert not found.any() and not Boom.ran


def test_size_limit_evicts_the_oldest_shards(tmp_path):
    root = tmp_path / "store"
    width = 256  # 1 kB a row
    store = FeatureStore(root, max_mb=0.25)  # 256 kB: two shards of 100 rows fit, not three
    shards = [write_shard(store, 100, width=width, start=100 * k) for k in range(5)]
    assert store.size_bytes() <= 0.25 * 2**20
    assert store.stats.shards_evicted == 3
    fresh = FeatureStore(root).bucket("enc", {"s": 1}, width)
    assert [bool(fresh.lookup(keys)[0].all()) for keys in shards] == [0, 0, 0, 1, 1]
    # The store object that evicted knows it too.
    assert not store.bucket("enc", {"s": 1}, width).lookup(shards[0])[0].any()


def test_environment_settings(monkeypatch, tmp_path):
    monkeypatch.setenv(feature_store.CACHE_ENV, "off")
    assert feature_store.default_store() is None
    monkeypatch.setenv(feature_store.CACHE_ENV, str(tmp_path / "x"))
    monkeypatch.setenv(feature_store.SIZE_ENV, "12")
    store = feature_store.default_store()
    assert store.root == tmp_path / "x" and store.max_bytes == 12 * 2**20
    monkeypatch.setenv(feature_store.SIZE_ENV, "lots")
    with pytest.raises(BertclsError, match="SPACY_BERTCLS_FEATURE_CACHE_MB"):
        feature_store.default_store()
    monkeypatch.delenv(feature_store.CACHE_ENV)
    monkeypatch.delenv(feature_store.SIZE_ENV)
    monkeypatch.setenv(outputs.CACHE_DIR_ENV, str(tmp_path / "cache"))
    assert feature_store.default_root() == tmp_path / "cache" / "features"


def test_store_off_writes_nothing(tiny_encoder, monkeypatch, store_dir):
    monkeypatch.setenv(feature_store.CACHE_ENV, "off")
    nlp = make_nlp(tiny_encoder, freeze_encoder=True)
    train(nlp, make_examples(nlp), epochs=2)
    assert not store_dir.exists()
