"""Tokenizers: a local HF model directory's own (so counts equal real vLLM's), or a built-in byte tokenizer.

HF directories load `tokenizer.json` with the `tokenizers` library and render the chat template
(`chat_template.jinja`, else tokenizer_config.json's `chat_template`) with jinja2 the way
transformers' apply_chat_template does (sandboxed, trim_blocks, lstrip_blocks). Imports are lazy so a
bare-name server does not pay for them.

The built-in tokenizer (bare model names) maps each UTF-8 byte to one token id (0-255): deterministic,
reversible, fast, and 256 characters make a 256-token prompt.
"""

from __future__ import annotations

import hashlib
import json
import random
from array import array
from pathlib import Path
from typing import Any, Protocol

BYTE_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


class Tokenizer(Protocol):
    vocab_size: int
    output_vocab: list[int]

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def token_strs(self, ids: list[int]) -> list[str]: ...

    def apply_chat_template(
        self, messages: list[dict[str, Any]], add_generation_prompt: bool = True, **kwargs: Any
    ) -> str: ...


def _render(
    template: str,
    messages: list[dict[str, Any]],
    add_generation_prompt: bool,
    special: dict[str, Any],
    kwargs: dict[str, Any],
) -> str:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(msg: str) -> None:
        raise ValueError(msg)

    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(
        messages=messages, add_generation_prompt=add_generation_prompt, **special, **kwargs
    )


class ByteTokenizer:
    vocab_size = 256

    def __init__(self) -> None:
        # outputs are lowercase words: readable, and never a special or multi-byte sequence
        self.output_vocab = [*range(ord("a"), ord("z") + 1), ord(" ")]
        self.chat_template = BYTE_CHAT_TEMPLATE

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(ids).decode("utf-8", errors="replace")

    def token_strs(self, ids: list[int]) -> list[str]:
        return [bytes([i]).decode("utf-8", errors="replace") for i in ids]

    def apply_chat_template(
        self, messages: list[dict[str, Any]], add_generation_prompt: bool = True, **kwargs: Any
    ) -> str:
        return _render(self.chat_template, messages, add_generation_prompt, {}, kwargs)


class HFTokenizer:
    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer as _Tok

        self._tok = _Tok.from_file(str(model_dir / "tokenizer.json"))
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        cfg_path = model_dir / "tokenizer_config.json"
        cfg: dict[str, Any] = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
        self.special = {k: cfg.get(k) for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
        tpl = model_dir / "chat_template.jinja"
        self.chat_template: str | None = tpl.read_text() if tpl.exists() else cfg.get("chat_template")
        special_ids = {i for i, t in self._added_tokens().items() if t.special}
        # outputs: tokens that decode on their own to plain ASCII letters (optionally after a space), so
        # streamed text is readable and never a partial UTF-8 sequence; capped to keep start-up cheap
        plain: list[int] = []
        for i in range(self.vocab_size):
            if i in special_ids:
                continue
            text = self._tok.decode([i])
            word = text[1:] if text.startswith(" ") else text
            if word.isascii() and word.isalpha():
                plain.append(i)
                if len(plain) >= 4096:
                    break
        self.output_vocab = plain or sorted(set(range(self.vocab_size)) - special_ids)

    def _added_tokens(self) -> dict[int, Any]:
        decoder = getattr(self._tok, "get_added_tokens_decoder", None)
        return dict(decoder()) if decoder else {}

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, ids: list[int]) -> str:
        return str(self._tok.decode(ids, skip_special_tokens=True))

    def token_strs(self, ids: list[int]) -> list[str]:
        return [self._tok.id_to_token(i) or "" for i in ids]

    def apply_chat_template(
        self, messages: list[dict[str, Any]], add_generation_prompt: bool = True, **kwargs: Any
    ) -> str:
        if not self.chat_template:
            # vLLM (transformers >= 4.44) refuses a chat request when the tokenizer has no template
            raise ValueError(
                "As of transformers v4.44, default chat template is no longer allowed, so you must "
                "provide a chat template if the tokenizer does not define one."
            )
        return _render(self.chat_template, messages, add_generation_prompt, self.special, kwargs)


def load_tokenizer(model: str, tokenizer: str | None = None) -> Tokenizer:
    path = Path(tokenizer or model)
    if (path / "tokenizer.json").is_file():
        return HFTokenizer(path)
    return ByteTokenizer()


def plan_output(
    tok: Tokenizer,
    seed: int,
    prompt_ids: list[int],
    n: int,
    sample_index: int = 0,
    allowed_token_ids: list[int] | None = None,
) -> list[int]:
    """The tokens a request will emit: a pure function of (seed, prompt[, which of n samples]), drawn
    from `allowed_token_ids` when the request restricts sampling (vLLM masks every other logit, so
    one allowed id makes the output that id, on real vLLM too)."""
    h = hashlib.blake2b(
        array("q", prompt_ids).tobytes(), digest_size=16, key=f"{seed}:{sample_index}".encode()
    )
    rng = random.Random(int.from_bytes(h.digest(), "little"))
    return rng.choices(allowed_token_ids or tok.output_vocab, k=n)
