"""The markers the sanitizer writes (``[REDACTED_EMAIL]``, ``[str len=12]``...), recognised
again so sanitizing twice changes nothing, and the masks that hide ``\\n``/``\\t``/``\\r``
escape letters from the word-boundary rules while text is scanned."""

from __future__ import annotations

import re

_IN_TEXT_MARKER = re.compile(
    r"\[(?:REDACTED_[A-Z0-9_]+(?::[0-9a-f]{8,64})?|TRUNCATED: [0-9]+ chars)\]"
)
_WHOLE_MARKER = re.compile(  # a whole value we produced; kept as is (idempotence)
    r"\[(?:REDACTED_[A-Z0-9_]+(?::[0-9a-f]{8,64})?|(?:str|bytes) len=[0-9]+(?: hmac=[0-9a-f]+)?"
    r"|float (?:nan|-?inf)|CYCLE|MAX_DEPTH|UNSERIALIZABLE [\w.<>]{0,100})\]"
)

# Each escape letter swapped for a separator of the same length while scanning, then restored.
_MASK_OF = {"n": "\x1c", "t": "\x1d", "r": "\x1e"}
_LETTER_OF = {mask: letter for letter, mask in _MASK_OF.items()}
_ESCAPE_LETTER = re.compile(r"\\([ntr])")
_MASKED_ESCAPE = re.compile("\\\\([\x1c\x1d\x1e])")
