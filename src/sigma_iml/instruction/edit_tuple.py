"""The semantic transformation tuple ``(original concept, edited concept, action)``.

The paper's parser (STP, §3.2.2 and Appendix C) turns an editing instruction into this
tuple; the grounding stage looks for the original concept in the original image and the
edited concept in the edited image, and the action picks the fusion rule (ACSF).

JSON form: ``{"original_concept": ..., "edited_concept": ..., "action": ...}``, an absent
concept spelled ``"null"`` as in the paper's prompt. LLM output uses the prompt's own keys
(``"original concept"``, ``"action type"``) and often wraps the object in prose or
markdown: :func:`repair_tuple` recovers it, :func:`schema_problems` says what is still
wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import SigmaError

#: The five action types of the paper (Appendix C), spelled as its prompt spells them.
ACTIONS: tuple[str, ...] = ("add", "remove", "attribute change", "replace", "global")

#: How an absent concept is written (the paper's prompt: ``"original concept":"null"``).
NULL = "null"

#: The JSON keys of a tuple.
KEYS: tuple[str, str, str] = ("original_concept", "edited_concept", "action")


class TupleFormatError(SigmaError, ValueError):
    """Text that cannot be read as a transformation tuple, even after repair."""


@dataclass(frozen=True)
class EditTuple:
    """``(original_concept, edited_concept, action)``; an absent concept is ``"null"``."""

    original_concept: str
    edited_concept: str
    action: str

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise TupleFormatError(
                f"action {self.action!r} is not one of {', '.join(repr(a) for a in ACTIONS)}"
            )
        for key in ("original_concept", "edited_concept"):
            value = getattr(self, key)
            if not isinstance(value, str) or not value.strip():
                raise TupleFormatError(
                    f"{key} must be a non-empty string (or 'null'), got {value!r}"
                )

    @property
    def original(self) -> str | None:
        """The original concept, or None when absent."""
        return None if self.original_concept == NULL else self.original_concept

    @property
    def edited(self) -> str | None:
        """The edited concept, or None when absent."""
        return None if self.edited_concept == NULL else self.edited_concept

    def to_dict(self) -> dict[str, str]:
        return {
            "original_concept": self.original_concept,
            "edited_concept": self.edited_concept,
            "action": self.action,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EditTuple:
        """Strict: exactly the three keys, string values (no repair; see :func:`repair_tuple`)."""
        if not isinstance(data, dict):
            raise TupleFormatError(f"a tuple is a JSON object, got {type(data).__name__}")
        if set(data) != set(KEYS):
            raise TupleFormatError(
                f"a tuple has exactly the keys {', '.join(KEYS)}; got {', '.join(map(str, data))}"
            )
        for key in KEYS:
            if not isinstance(data[key], str):
                raise TupleFormatError(f"{key} must be a string, got {data[key]!r}")
        return cls(data["original_concept"], data["edited_concept"], data["action"])

    @classmethod
    def from_json(cls, text: str) -> EditTuple:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise TupleFormatError(f"not JSON: {err}") from None
        return cls.from_dict(data)

    def __str__(self) -> str:
        return f"({self.original_concept!r}, {self.edited_concept!r}, {self.action})"


#: The tuple used when nothing can be said about the edit: the uniform ε prior.
GLOBAL_TUPLE = EditTuple(NULL, NULL, "global")


def schema_problems(edit: EditTuple) -> list[str]:
    """What makes ``edit`` unusable for grounding, beyond the types ``EditTuple`` checks.

    The action must come with the concepts its fusion rule reads: add needs the edited
    concept (``P = A_e``), remove the original (``P = A_o``), replace both, attribute
    change at least one (an LLM often names the object only once). A tuple with a problem
    is treated as invalid parser output: repaired, retried, or handed to the rules.
    """
    problems = []
    if edit.action == "add" and edit.edited is None:
        problems.append("action 'add' without an edited concept")
    if edit.action == "remove" and edit.original is None:
        problems.append("action 'remove' without an original concept")
    if edit.action == "replace" and (edit.original is None or edit.edited is None):
        problems.append("action 'replace' needs both concepts")
    if edit.action == "attribute change" and edit.original is None and edit.edited is None:
        problems.append("action 'attribute change' without any concept")
    return problems


# ----------------------------------------------------------------------------- repair

# Keys as LLMs write them, after lower-casing and turning "_"/"-" into spaces.
_KEY_ALIASES: dict[str, str] = {}
for _alias in ("original concept", "original", "source concept", "source", "orig concept", "c o"):
    _KEY_ALIASES[_alias] = "original_concept"
for _alias in ("edited concept", "edited", "target concept", "target", "new concept", "c e"):
    _KEY_ALIASES[_alias] = "edited_concept"
for _alias in ("action type", "action", "operation", "edit type", "type", "operation type"):
    _KEY_ALIASES[_alias] = "action"

# Action spellings seen in LLM output, after lower-casing and "_"/"-" → space.
_ACTION_ALIASES: dict[str, str] = {
    "attribute": "attribute change",
    "attribute changed": "attribute change",
    "attributes change": "attribute change",
    "change attribute": "attribute change",
    "attribute modification": "attribute change",
    "modify": "attribute change",
    "modification": "attribute change",
    "addition": "add",
    "adding": "add",
    "added": "add",
    "insert": "add",
    "removal": "remove",
    "removed": "remove",
    "delete": "remove",
    "deletion": "remove",
    "erase": "remove",
    "replacement": "replace",
    "replaced": "replace",
    "swap": "replace",
    "substitute": "replace",
    "global change": "global",
    "global edit": "global",
    "style": "global",
    "style transfer": "global",
}

_NULL_SPELLINGS = {"", "null", "none", "n/a", "na", "nil", "nothing", "empty", "-"}


def normalise_action(value: Any) -> str:
    """``"Attribute_Change"`` → ``"attribute change"``; raises on an unknown action."""
    if not isinstance(value, str):
        raise TupleFormatError(f"action must be a string, got {value!r}")
    text = re.sub(r"[\s_\-]+", " ", value.strip().strip("\"'.").lower()).strip()
    if text in ACTIONS:
        return text
    if text in _ACTION_ALIASES:
        return _ACTION_ALIASES[text]
    raise TupleFormatError(f"unknown action {value!r}")


def normalise_concept(value: Any) -> str:
    """None, ``""``, ``"None"``, ``"N/A"`` → ``"null"``; strings are stripped of quotes and
    surrounding space; a list of strings is joined (an LLM sometimes lists objects)."""
    if value is None:
        return NULL
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = " and ".join(v.strip() for v in value if v.strip())
    if not isinstance(value, str):
        raise TupleFormatError(f"a concept must be a string, got {value!r}")
    text = " ".join(value.strip().strip("\"'`").split())
    return NULL if text.lower() in _NULL_SPELLINGS else text


def _json_objects(text: str) -> list[str]:
    """Balanced ``{...}`` spans of ``text``, outermost first, in order (strings respected)."""
    spans, depth, start, in_string, escaped = [], 0, -1, None, False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == in_string:
                in_string = None
            continue
        if char in "\"'" and depth > 0:
            in_string = char
        elif char == "{":
            if depth == 0:
                start = index
            depth += 1
        elif char == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start : index + 1])
    return spans


def _loads_lenient(span: str) -> Any:
    try:
        return json.loads(span)
    except json.JSONDecodeError:
        pass
    # Python-literal style output: single quotes, None, trailing commas.
    fixed = re.sub(r",\s*([}\]])", r"\1", span)
    fixed = re.sub(r"\bNone\b", "null", fixed)
    if "'" in fixed and '"' not in fixed:
        fixed = fixed.replace("'", '"')
    return json.loads(fixed)


def tuple_from_mapping(data: dict[str, Any]) -> EditTuple:
    """Normalise keys and values of a parsed object into an :class:`EditTuple`."""
    found: dict[str, Any] = {}
    for key, value in data.items():
        canonical = _KEY_ALIASES.get(re.sub(r"[\s_\-]+", " ", str(key).strip().lower()))
        if canonical is not None and canonical not in found:
            found[canonical] = value
    if "action" not in found:
        raise TupleFormatError(f"no action key among {', '.join(map(str, data))}")
    return EditTuple(
        normalise_concept(found.get("original_concept")),
        normalise_concept(found.get("edited_concept")),
        normalise_action(found["action"]),
    )


def repair_tuple(text: str) -> EditTuple:
    """Read a tuple from raw LLM output.

    Takes the first JSON object in ``text`` that yields a tuple (markdown fences and prose
    around it are ignored), reads single-quoted / ``None`` / trailing-comma variants,
    maps key spellings (``"original concept"``, ``"action type"``, ``"action_type"``) and
    value spellings (``"Attribute_Change"``, ``None`` → ``"null"``). Raises
    :class:`TupleFormatError` naming the last problem met when nothing works.
    """
    spans = _json_objects(text)
    if not spans:
        raise TupleFormatError(f"no JSON object in the output {text[:80]!r}")
    last_error: Exception | None = None
    for span in spans:
        try:
            data = _loads_lenient(span)
            if not isinstance(data, dict):
                raise TupleFormatError("not a JSON object")
            return tuple_from_mapping(data)
        except (json.JSONDecodeError, TupleFormatError) as err:
            last_error = err
    raise TupleFormatError(f"no usable tuple in the output: {last_error}")


# ----------------------------------------------------------------------------- comparison

_ARTICLES = {"a", "an", "the"}


def normalise_for_match(concept: str) -> str:
    """The form two concepts are compared in: lower case, punctuation → space, the
    articles a/an/the dropped, whitespace collapsed. ``"The boy's T-shirt."`` →
    ``"boy s t shirt"``. ``"null"`` stays ``"null"``."""
    words = re.sub(r"[^\w\s]", " ", concept.lower()).split()
    return " ".join(w for w in words if w not in _ARTICLES)


def tuples_match(predicted: EditTuple, expected: EditTuple) -> bool:
    """Tuple match: equal actions and both concepts equal after
    :func:`normalise_for_match`."""
    return (
        predicted.action == expected.action
        and normalise_for_match(predicted.original_concept)
        == normalise_for_match(expected.original_concept)
        and normalise_for_match(predicted.edited_concept)
        == normalise_for_match(expected.edited_concept)
    )
