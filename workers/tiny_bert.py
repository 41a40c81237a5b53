"""A tiny BERT for tests and demos: an in-code vocabulary, its tokenizer and a small config."""

from __future__ import annotations

import functools
import string
from typing import TYPE_CHECKING

from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece
from transformers import PreTrainedTokenizerFast

from workers.data import synthetic_words

if TYPE_CHECKING:
    from transformers import BertConfig

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# Frequent English words, so that real text (e.g. SST-2) needs fewer character pieces.
_COMMON_WORDS = (
    "a", "an", "the", "of", "to", "in", "on", "at", "by", "for", "with", "from", "about", "as",
    "into", "than", "then", "that", "this", "these", "those", "it", "its", "he", "she", "they",
    "we", "you", "i", "me", "my", "your", "his", "her", "their", "our", "who", "what", "which",
    "when", "where", "why", "how", "all", "some", "any", "no", "not", "one", "more",
    "most", "much", "many", "be", "been", "are", "were", "has", "have", "had", "do", "does",
    "did", "can", "could", "will", "would", "should", "may", "might", "if", "or", "so", "just",
    "only", "even", "also", "too", "up", "out", "like", "there", "here", "time", "way", "film",
    "movie", "story", "love", "life", "make", "makes", "made", "get", "good", "bad", "best",
    "little", "new", "own", "work", "characters", "director", "comedy", "drama", "funny",
)  # fmt: skip
# Common word endings as continuation pieces.
_SUFFIX_PIECES = ("##s", "##ing", "##ed", "##ly", "##er", "##est", "##tion", "##ness", "##ful")


@functools.lru_cache(maxsize=1)
def tiny_vocab() -> tuple[str, ...]:
    """The deterministic vocabulary: specials, characters, their ``##`` forms, then words.

    Every lowercase ASCII letter, digit and punctuation mark (and its ``##`` continuation) is
    present, so WordPiece can split any lowercase word without ``[UNK]``.

    Returns:
        The tokens in id order; ``[PAD]`` has id 0.
    """
    chars = [*string.ascii_lowercase, *string.digits, *string.punctuation, "£", "€"]
    tokens: list[str] = [*SPECIAL_TOKENS, *chars, *(f"##{c}" for c in chars)]
    seen = set(tokens)
    for word in (*synthetic_words(), *_COMMON_WORDS, *_SUFFIX_PIECES):
        if word not in seen:
            seen.add(word)
            tokens.append(word)
    return tuple(tokens)


@functools.lru_cache(maxsize=1)
def build_tiny_bert_tokenizer() -> PreTrainedTokenizerFast:
    """A lower-casing WordPiece tokenizer over :func:`tiny_vocab`, cached per process.

    Returns:
        The fast tokenizer (``model_max_length`` 512).
    """
    vocab = {token: index for index, token in enumerate(tiny_vocab())}
    # The same pipeline as BertTokenizerFast (uncased), built directly with `tokenizers`.
    backend = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=None)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    backend.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )


def tiny_bert_config(num_labels: int, dropout: float) -> BertConfig:
    """Config of the tiny BERT: 2 layers, 2 heads, hidden size 64.

    Args:
        num_labels: Number of classes of the classification head.
        dropout: Hidden and attention dropout probability.

    Returns:
        The BERT config.
    """
    from transformers import BertConfig  # imports torch: only where a model is built

    config = BertConfig(
        vocab_size=len(tiny_vocab()),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        pad_token_id=0,
    )
    config.num_labels = num_labels
    return config
