"""Minimal CLIP BPE tokenizer (vocab.json + merges.txt), used by the self-test to produce
reference token ids for the SD fixture, and to build the fixture's tiny vocabulary.

Follows openai/CLIP `simple_tokenizer.py` / transformers `CLIPTokenizer`: text is
html-unescaped, whitespace-collapsed and lower-cased (ftfy's mojibake repair is omitted),
split with CLIP's pattern, each piece byte-encoded, BPE-merged with '</w>' marking the
end of a word; the sequence is [<|startoftext|>] + tokens + [<|endoftext|>], truncated to
max_length (keeping the final <|endoftext|>) and padded with <|endoftext|> (SD v1).
Python's `re` stands in for the `regex` package: letters are [^\\W\\d_], numbers \\d.
"""
from __future__ import annotations

import html
import json
import re
from typing import Dict, List, Sequence, Tuple

BOS, EOS = '<|startoftext|>', '<|endoftext|>'
PATTERN = re.compile(r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+",
                     re.IGNORECASE)


def bytes_to_unicode() -> Dict[int, str]:
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + list(range(ord('®'), ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def clean(text: str) -> str:
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r'\s+', ' ', text).strip().lower()


def _pairs(word: Tuple[str, ...]):
    return {(word[i], word[i + 1]) for i in range(len(word) - 1)}


class CLIPTokenizer:
    def __init__(self, vocab: Dict[str, int], merges: Sequence[Tuple[str, str]]):
        self.encoder = vocab
        self.ranks = {tuple(m): i for i, m in enumerate(merges)}
        self.byte_encoder = bytes_to_unicode()
        self.cache: Dict[str, str] = {BOS: BOS, EOS: EOS}
        self.bos, self.eos = vocab[BOS], vocab[EOS]

    @classmethod
    def from_files(cls, vocab_path: str, merges_path: str) -> 'CLIPTokenizer':
        with open(vocab_path, encoding='utf-8') as f:
            vocab = json.load(f)
        with open(merges_path, encoding='utf-8') as f:
            lines = f.read().split('\n')
        merges = [tuple(l.split()) for l in lines if l and not l.startswith('#version')]
        return cls(vocab, merges)

    def bpe(self, token: str) -> str:
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + '</w>',)
        pairs = _pairs(word)
        while pairs:
            bigram = min(pairs, key=lambda p: self.ranks.get(p, float('inf')))
            if bigram not in self.ranks:
                break
            first, second = bigram
            new: List[str] = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new.extend(word[i:])
                    break
                new.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new.append(first + second)
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = tuple(new)
            if len(word) == 1:
                break
            pairs = _pairs(word)
        out = ' '.join(word)
        self.cache[token] = out
        return out

    def tokenize(self, text: str) -> List[int]:
        ids: List[int] = []
        for piece in PATTERN.findall(clean(text)):
            piece = ''.join(self.byte_encoder[b] for b in piece.encode('utf-8'))
            ids.extend(self.encoder[t] for t in self.bpe(piece).split(' '))
        return ids

    def encode(self, text: str, max_length: int = 77) -> List[int]:
        ids = [self.bos] + self.tokenize(text)[:max_length - 2] + [self.eos]
        return ids + [self.eos] * (max_length - len(ids))


def build_tiny_vocab(corpus: Sequence[str], num_merges: int = 48):
    """A small CLIP-format vocabulary: 256 byte symbols, the same with '</w>', merges learnt
    greedily from `corpus`, then <|startoftext|>, <|endoftext|> (the real file's layout)."""
    be = bytes_to_unicode()
    base = list(be.values())
    vocab_list = base + [b + '</w>' for b in base]
    words: Dict[Tuple[str, ...], int] = {}
    for text in corpus:
        for piece in PATTERN.findall(clean(text)):
            piece = ''.join(be[b] for b in piece.encode('utf-8'))
            w = tuple(piece[:-1]) + (piece[-1] + '</w>',)
            words[w] = words.get(w, 0) + 1
    merges: List[Tuple[str, str]] = []
    for _ in range(num_merges):
        counts: Dict[Tuple[str, str], int] = {}
        for w, c in words.items():
            for i in range(len(w) - 1):
                counts[(w[i], w[i + 1])] = counts.get((w[i], w[i + 1]), 0) + c
        if not counts:
            break
        best = max(sorted(counts), key=lambda p: counts[p])
        merges.append(best)
        vocab_list.append(best[0] + best[1])
        new_words = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i < len(w) - 1 and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] = c
        words = new_words
    vocab_list += [BOS, EOS]
    return {t: i for i, t in enumerate(vocab_list)}, merges


def write_files(vocab: Dict[str, int], merges, folder: str) -> None:
    import os
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, 'vocab.json'), 'w', encoding='utf-8') as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(folder, 'merges.txt'), 'w', encoding='utf-8') as f:
        f.write('#version: 0.2\n' + ''.join(f'{a} {b}\n' for a, b in merges))
