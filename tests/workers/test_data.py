"""Tests of the tiny tokenizer, the synthetic data, file loading, truncation and collation."""

from __future__ import annotations

import json
import string
from collections import Counter
from pathlib import Path

import pytest
import torch

from search_spaces.spec import Dataset
from workers.data import (
    collate,
    encode_labels,
    load_text_data,
    synthetic_sentiment,
    synthetic_words,
    tokenize,
    truncate,
)
from workers.tiny_bert import build_tiny_bert_tokenizer, tiny_bert_config, tiny_vocab

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


# --- tiny BERT tokenizer ---------------------------------------------------------------------


def test_tokenizer_splits_unknown_words_without_unk() -> None:
    tokenizer = build_tiny_bert_tokenizer()
    text = "The quixotic zephyr, honestly, was NOT boring: 42 wombats agreed!"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.cls_token_id
    assert ids[-1] == tokenizer.sep_token_id
    assert tokenizer.unk_token_id not in ids
    # Lower-cased and reassembled from its pieces.
    assert tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "") == (
        text.lower().replace(" ", "")
    )


def test_every_lowercase_word_is_covered() -> None:
    tokenizer = build_tiny_bert_tokenizer()
    words = [string.ascii_lowercase, string.digits, "supercalifragilistic", "x9y8z7"]
    for word in words:
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids, word


def test_vocab_is_deterministic_and_complete() -> None:
    vocab = tiny_vocab()
    tiny_vocab.cache_clear()
    assert tiny_vocab() == vocab
    assert vocab[:5] == ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
    assert len(set(vocab)) == len(vocab)
    for char in string.ascii_lowercase + string.digits:
        assert char in vocab and f"##{char}" in vocab
    assert set(synthetic_words()) <= set(vocab)
    tokenizer = build_tiny_bert_tokenizer()
    assert tokenizer.pad_token_id == 0
    assert len(tokenizer) == len(vocab) == tiny_bert_config(2, 0.1).vocab_size


def test_synthetic_sentences_tokenize_to_whole_words() -> None:
    tokenizer = build_tiny_bert_tokenizer()
    data = synthetic_sentiment(n_train=50, n_eval=0)
    for text in data.train_texts:
        tokens = tokenizer.tokenize(text)
        assert not any(token.startswith("##") for token in tokens), text


def test_tiny_bert_config() -> None:
    config = tiny_bert_config(num_labels=3, dropout=0.25)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (64, 2, 2)
    assert config.intermediate_size == 128
    assert config.max_position_embeddings == 512
    assert config.num_labels == 3
    assert config.hidden_dropout_prob == config.attention_probs_dropout_prob == 0.25


# --- synthetic data --------------------------------------------------------------------------


def test_synthetic_is_deterministic_balanced_and_seeded() -> None:
    first = synthetic_sentiment(n_train=400, n_eval=100, seed=3)
    again = synthetic_sentiment(n_train=400, n_eval=100, seed=3)
    other = synthetic_sentiment(n_train=400, n_eval=100, seed=4)
    assert first == again
    assert first.train_texts != other.train_texts
    assert (len(first.train_texts), len(first.eval_texts)) == (400, 100)
    assert set(first.train_labels) == {0, 1}
    assert 0.4 < sum(first.train_labels) / 400 < 0.6
    assert first.label_names == ["negative", "positive"]
    # Not all distinct sentences are trivially repeated.
    assert len(set(first.train_texts)) > 350


def test_synthetic_negation_flips_labels() -> None:
    data = synthetic_sentiment(n_train=2000, n_eval=0)
    negated = [label for text, label in zip(data.train_texts, data.train_labels, strict=True)
               if " not " in f" {text} " and "good" in text.split()]  # fmt: skip
    # "not ... good" is negative apart from label noise.
    assert negated and sum(negated) / len(negated) < 0.3


def test_builtin_dataset_sizes() -> None:
    dataset = Dataset(name="synthetic-sentiment")
    data = load_text_data(dataset, max_train_samples=100, max_eval_samples=50)
    assert (len(data.train_texts), len(data.eval_texts)) == (100, 50)
    big = load_text_data(dataset, max_train_samples=3000, max_eval_samples=None)
    assert (len(big.train_texts), len(big.eval_texts)) == (3000, 256)
    assert load_text_data(dataset, 100, 50) == data


# --- files -----------------------------------------------------------------------------------


def _write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_tsv_with_header_keeps_quotes(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.tsv", 'sentence\tlabel\nit "works" \t1\n\nbad one\t0\n')
    evals = _write(tmp_path / "dev.tsv", "sentence\tlabel\nfine\t1\n")
    data = load_text_data(Dataset(train=train, eval=evals), None, None)
    assert data.train_texts == ['it "works"', "bad one"]
    assert data.train_labels == [1, 0]
    assert (data.eval_texts, data.eval_labels) == (["fine"], [1])
    assert data.label_names == ["0", "1"]


def test_csv_with_quoted_commas(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.csv", 'label,text\n2,"one, two"\n0,three\n')
    evals = _write(tmp_path / "eval.csv", "label,text\n1,four\n")
    dataset = Dataset(train=train, eval=evals, text_column="text")
    assert dataset.file_format == "csv"
    data = load_text_data(dataset, None, None)
    assert data.train_texts == ["one, two", "three"]
    assert data.train_labels == [2, 0]
    assert data.label_names == ["0", "1", "2"]


def test_jsonl(tmp_path: Path) -> None:
    rows = [{"review": "great", "stars": "pos"}, {"review": "awful", "stars": "neg"}]
    train = _write(tmp_path / "train.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    evals = _write(tmp_path / "eval.jsonl", json.dumps({"review": "ok", "stars": "pos"}))
    dataset = Dataset(train=train, eval=evals, text_column="review", label_column="stars")
    data = load_text_data(dataset, None, None)
    assert data.train_texts == ["great", "awful"]
    assert data.label_names == ["neg", "pos"]
    assert (data.train_labels, data.eval_labels) == ([1, 0], [1])


def test_headerless_with_column_names_and_string_labels(tmp_path: Path) -> None:
    train = _write(tmp_path / "sms.txt", 'ham\thello there\nspam\tWIN "cash" now\nham\thi\n')
    evals = _write(tmp_path / "sms_eval.txt", "spam\tfree prize\n")
    dataset = Dataset(
        train=train, eval=evals, format="tsv", column_names=["label", "text"], text_column="text"
    )
    data = load_text_data(dataset, None, None)
    assert data.train_texts == ["hello there", 'WIN "cash" now', "hi"]
    assert data.label_names == ["ham", "spam"]
    assert (data.train_labels, data.eval_labels) == ([0, 1, 0], [1])


def test_missing_column_names_column_and_file(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.tsv", "text\tlabel\nhello\t1\n")
    with pytest.raises(ValueError, match=r"'sentence'.*train\.tsv"):
        load_text_data(Dataset(train=train), None, None)


def test_eval_split_and_subsampling(tmp_path: Path) -> None:
    lines = "".join(f"row {i}\t{i % 2}\n" for i in range(100))
    train = _write(tmp_path / "train.tsv", "sentence\tlabel\n" + lines)
    dataset = Dataset(train=train, eval_fraction=0.2)
    data = load_text_data(dataset, None, None, seed=1)
    assert (len(data.train_texts), len(data.eval_texts)) == (80, 20)
    assert not set(data.train_texts) & set(data.eval_texts)
    assert load_text_data(dataset, None, None, seed=1) == data
    assert load_text_data(dataset, None, None, seed=2).eval_texts != data.eval_texts

    small = load_text_data(dataset, max_train_samples=10, max_eval_samples=5, seed=1)
    assert (len(small.train_texts), len(small.eval_texts)) == (10, 5)
    assert set(small.train_texts) <= set(data.train_texts)
    assert set(small.eval_texts) <= set(data.eval_texts)
    assert load_text_data(dataset, 10, 5, seed=1) == small
    assert load_text_data(dataset, 10, 5, seed=7).train_texts != small.train_texts
    # Labels stay attached to their texts.
    for text, label in zip(small.train_texts, small.train_labels, strict=True):
        assert int(text.split()[1]) % 2 == label


def test_encode_labels() -> None:
    assert encode_labels(["1", "0", "3"]) == ([1, 0, 3], ["0", "1", "2", "3"])
    assert encode_labels([-1, 1, -1]) == ([0, 1, 0], ["-1", "1"])
    assert encode_labels(["spam", "ham"]) == ([1, 0], ["ham", "spam"])
    assert encode_labels([1.0, 0.0]) == ([1, 0], ["0", "1"])


def test_real_sst2() -> None:
    sst2 = SHARED_DATA / "sst2"
    dataset = Dataset(train=str(sst2 / "train.tsv"), eval=str(sst2 / "dev.tsv"))
    data = load_text_data(dataset, max_train_samples=1000, max_eval_samples=None)
    assert len(data.train_texts) == 1000
    assert len(data.eval_texts) == 872
    assert Counter(data.eval_labels) == {0: 428, 1: 444}
    assert data.label_names == ["0", "1"]
    assert data.eval_texts[0] == "it 's a charming and often affecting journey ."
    tokenized = tokenize(data, build_tiny_bert_tokenizer(), max_length=64)
    unk = build_tiny_bert_tokenizer().unk_token_id
    unknown = sum(ids.count(unk) for ids in tokenized.eval_ids)
    assert unknown < 20  # only rare non-ASCII characters


def test_real_sms_spam() -> None:
    path = SHARED_DATA / "sms_spam" / "SMSSpamCollection.tsv"
    dataset = Dataset(train=str(path), column_names=["label", "text"], text_column="text")
    data = load_text_data(dataset, None, None)
    labels = data.train_labels + data.eval_labels
    texts = data.train_texts + data.eval_texts
    assert len(labels) == 5574
    assert len(data.eval_texts) == 557
    assert data.label_names == ["ham", "spam"]
    assert Counter(labels) == {0: 4827, 1: 747}
    assert sum('"' in text for text in texts) == 145


# --- tokenising, truncation, collation -------------------------------------------------------


def test_tokenize_caps_length_and_keeps_labels() -> None:
    data = synthetic_sentiment(n_train=20, n_eval=10)
    tokenizer = build_tiny_bert_tokenizer()
    tokenized = tokenize(data, tokenizer, max_length=8)
    assert tokenized.train_labels == data.train_labels
    assert len(tokenized.eval_ids) == 10
    assert tokenized.num_labels == 2
    assert (tokenized.pad_id, tokenized.sep_id) == (0, tokenizer.sep_token_id)
    assert all(len(ids) <= 8 and ids[-1] == tokenizer.sep_token_id for ids in tokenized.train_ids)
    assert tokenize(data, tokenizer, max_length=10_000).max_length == 512


def test_truncate_keeps_final_sep() -> None:
    ids = [2, 10, 11, 12, 13, 3]
    assert truncate(ids, 10, 3) is ids
    assert truncate(ids, 4, 3) == [2, 10, 11, 3]
    assert truncate(ids, 4, None) == [2, 10, 11, 12]
    assert truncate([2, 10, 11, 12], 3, 3) == [2, 10, 11]  # no final [SEP] to keep
    assert ids == [2, 10, 11, 12, 13, 3]


def test_collate_pads_to_longest() -> None:
    batch = collate([[2, 5, 3], [2, 3], [2, 5, 6, 7, 3]], [1, 0, 1], pad_id=0)
    assert batch["input_ids"].shape == (3, 5)
    assert batch["input_ids"].dtype == torch.long
    assert batch["input_ids"][1].tolist() == [2, 3, 0, 0, 0]
    assert batch["attention_mask"].tolist() == [
        [1, 1, 1, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 1, 1],
    ]
    assert batch["labels"].tolist() == [1, 0, 1]
    assert collate([[2, 3]], [0], pad_id=9)["input_ids"].tolist() == [[2, 3]]
