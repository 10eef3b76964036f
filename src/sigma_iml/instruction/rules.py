"""A rule-based instruction parser: no weights, microseconds per instruction.

It is the fallback of the LLM parser (docs/design.md §Inference 5: invalid LLM output is
repaired or retried, then handed to rules) and the parser used when no LLM is configured.
It covers the paper's Table 4 examples and the phrasings common in editing corpora
(MagicBrush, InstructPix2Pix, AnyEdit, OmniEdit): imperative verbs (add / put / place /
insert; remove / delete / erase / get rid of / take out; replace X with Y, swap, turn X
into Y; change or make X <colour, material, pose, expression, ...>), descriptive
sentences ("the pizza is now a cake", "there should be a clock on the wall") and
hypothetical questions ("what if the cat was a dog?").

Concepts follow the labelling convention of ``tests/data/instructions_labelled.jsonl``:
short noun phrases without articles or placement phrases ("add a hat on the person" →
"hat"), a possessive owner dropped as the paper's Table 4 does ("the boy's grey striped
t-shirt" → "grey striped t-shirt"), and for an attribute change the edited concept is the
new attribute put before the object ("make the car red" → "car", "red car").
Anything not recognised becomes ``global`` with no concepts: the uniform ε prior, which
lets the semantic branch decide alone (the paper's treatment of global edits).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .edit_tuple import GLOBAL_TUPLE, NULL, EditTuple

# ----------------------------------------------------------------------------- lexicons

#: Words that refer to the whole image: "make it ...", "turn the photo into ...".
IMAGE_WORDS = frozenset(
    "it image photo photograph picture pic scene everything whole entire all shot view "
    "frame background overall this".split()
)

#: Nouns and adjectives naming a whole-image change (weather, season, time of day,
#: style, lighting, tone: the paper's definition of global in Appendix C).
GLOBAL_WORDS = frozenset(
    """
    weather snowy snow snowing rainy rain raining foggy fog misty mist stormy storm
    thunderstorm sunny overcast hazy windy blizzard
    season winter summer autumn fall spring wintertime summertime springtime
    night nighttime day daytime dawn dusk sunset sunrise morning evening midnight noon
    twilight
    style painting watercolor watercolour sketch drawing cartoon anime comic illustration
    cyberpunk vintage retro sepia monochrome grayscale greyscale impressionist
    impressionism cubist cubism surreal pixel pop art render oil filter effect postcard
    lighting light brightness brighter darker contrast saturation exposure tone tones
    mood atmosphere dramatic moody cinematic warmer cooler colder vibrant
    """.split()
)

#: Colours and colour modifiers.
COLOURS = frozenset(
    """
    red orange yellow green blue purple violet pink brown black white grey gray silver
    gold golden beige cyan magenta turquoise teal navy maroon crimson scarlet lime olive
    indigo lavender tan cream ivory bronze copper transparent colorful colourful
    light dark bright pale deep pastel neon
    """.split()
)

#: Words that can only be an attribute (used where "X to Y" might be a replacement).
ATTRIBUTE_WORDS = COLOURS | frozenset(
    """
    happy sad angry surprised smiling crying laughing sleeping old older young younger
    big bigger small smaller large larger tall taller short shorter long longer wet dry
    shiny matte striped spotted dotted plaid checkered wooden metallic glass broken new
    rusty clean dirty ripe rotten fresh frozen burnt curly straight wavy bald open closed
    """.split()
)

#: Base verbs that describe a pose, action or expression ("make the woman smile").
STATE_VERBS = frozenset(
    """
    smile laugh cry frown run walk jump sit stand sleep dance fly swim wave glow shine
    yawn sing read kneel lie bend stretch wink blink scream shout shine melt burn bloom
    """.split()
)

#: Verbs after "make X" that introduce an object X holds or wears (an add).
HOLDING_VERBS = r"hold|wear|carry|have|put on"

#: Nouns naming a property of the whole image ("make the colors more vibrant").
_IMAGE_PROPERTIES = frozenset(
    "color colour lighting light contrast brightness tone mood atmosphere exposure "
    "saturation weather season style".split()
)

_DETERMINERS = frozenset(
    "a an the some all any his her their its my your our this that these those few several".split()
)

# A concept ends before a placement phrase ("on the table", "next to the bench") or a
# participle that starts one ("flying in the sky", "leaning against the wall").
_PLACEMENT = (
    r"on top of|in front of|next to|close to|out of|on|onto|in|into|inside|at|to|near|"
    r"beside|behind|under|underneath|below|above|over|around|across|along|against|from|"
    r"by|between|among|within|off|toward|towards|through|for|during"
)
_PLACEMENT_RE = re.compile(rf"\s+(?:(?:\w+ing|\w+ed)\s+)?(?:{_PLACEMENT})\s+.*$")

_POLITE_PREFIX = re.compile(
    r"^(?:(?:please|kindly|now|then|also|just|and|ok|okay)\s*,?\s+)+|"
    r"^(?:could|can|would|will) you(?: please)?\s+|"
    r"^(?:i (?:want|would like|'d like) (?:you )?to|let's|lets)\s+"
)


def _clean(text: str) -> str:
    text = text.strip().lower()
    text = text.replace("’", "'").replace("“", '"').replace("”", '"')
    text = re.sub(r"[\"`]", "", text)
    text = re.sub(r"[.!?;]+$", "", text.strip()).strip()
    text = re.sub(r"\s+", " ", text)
    previous = None
    while previous != text:
        previous = text
        text = _POLITE_PREFIX.sub("", text).strip()
    return text.rstrip(",. ")


def concept_phrase(text: str, *, keep_placement: bool = False) -> str:
    """A noun phrase as the parser returns it: no leading determiners, no possessive owner,
    no placement phrase. ``"all the people in the background"`` → ``"people"``."""
    phrase = text.strip().strip(",.")
    if not keep_placement:
        phrase = _PLACEMENT_RE.sub("", phrase)
    # The possessive owner goes: "the boy's grey t-shirt" → "grey t-shirt".
    if "'s " in phrase:
        phrase = phrase.rsplit("'s ", 1)[1]
    elif "s' " in phrase:
        phrase = phrase.rsplit("s' ", 1)[1]
    words = phrase.split()
    while words and (words[0] in _DETERMINERS or words[0] == "a" or words[:2] == ["a", "few"]):
        words = words[2:] if words[:2] == ["a", "few"] else words[1:]
    return " ".join(words)


def _head(phrase: str) -> str:
    """The last word, crudely singularised: "white flowers" → "flower"."""
    words = phrase.split()
    if not words:
        return ""
    word = words[-1]
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def _is_image(phrase: str) -> bool:
    words = concept_phrase(phrase, keep_placement=True).split()
    if not words and phrase.strip() in IMAGE_WORDS:  # "this", "all": determiners too
        return True
    return bool(words) and len(words) <= 2 and words[-1] in IMAGE_WORDS


def _mentions_global(text: str) -> bool:
    return any(word in GLOBAL_WORDS for word in re.findall(r"[a-z]+", text))


def _is_attribute_only(phrase: str) -> bool:
    """True when every word of ``phrase`` is an attribute ("bright blue", "happy")."""
    words = concept_phrase(phrase, keep_placement=True).replace("-", " ").split()
    return bool(words) and all(w in ATTRIBUTE_WORDS or w == "and" for w in words)


def _gerund(verb: str) -> str:
    """smile → smiling, run → running, cry → crying, lie → lying."""
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith("e") and not verb.endswith("ee"):
        return verb[:-1] + "ing"
    vowels = "aeiou"
    if (
        len(verb) >= 3
        and verb[-1] not in vowels + "wxy"
        and verb[-2] in vowels
        and verb[-3] not in vowels
        and len(re.findall(r"[aeiou]+", verb)) == 1
    ):
        return verb + verb[-1] + "ing"
    return verb + "ing"


def _attribute(obj: str, attribute: str) -> EditTuple:
    """``obj`` gets ``attribute``: (obj, "attribute obj", attribute change)."""
    concept = concept_phrase(obj)
    attribute = concept_phrase(attribute, keep_placement=True)
    words = attribute.split()
    if len(words) == 1 and words[0] in STATE_VERBS:
        attribute = _gerund(words[0])
    return EditTuple(concept, f"{attribute} {concept}".strip(), "attribute change")


def _transform(source: str, target: str) -> EditTuple:
    """``source`` becomes ``target``: global when either side is the whole image or a
    global notion (day → night); an attribute change when ``target`` is only attributes
    or keeps the object (same head noun: "red flowers" → "white flowers"); otherwise a
    replacement."""
    if _is_image(source) or (_mentions_global(source) and _mentions_global(target)):
        return GLOBAL_TUPLE
    # "an orange" is a fruit, "orange" a colour: an article makes it an object.
    if not target.strip().startswith(("a ", "an ")) and _is_attribute_only(target):
        return _attribute(source, target)
    original, edited = concept_phrase(source), concept_phrase(target)
    if not original or not edited:
        return GLOBAL_TUPLE
    if _head(original) == _head(edited) and original != edited:
        return EditTuple(original, edited, "attribute change")
    return EditTuple(original, edited, "replace")


def _add(obj: str) -> EditTuple:
    concept = concept_phrase(obj)
    # "add a vintage filter", "add a dramatic effect": a whole-image change.
    if not concept or _head(concept) in {"filter", "effect", "style", "tone", "look", "vibe"}:
        return GLOBAL_TUPLE
    return EditTuple(NULL, concept, "add")


def _remove(obj: str) -> EditTuple:
    concept = concept_phrase(obj)
    return EditTuple(concept, NULL, "remove") if concept else GLOBAL_TUPLE


def _make(obj: str, rest: str) -> EditTuple:
    """``make OBJ REST`` where OBJ and REST are not yet separated."""
    words = (obj + " " + rest).split()
    return _split_make(words)


def _split_make(words: list[str]) -> EditTuple:
    """ "make the car red", "make the woman smile", "make the horse a zebra"."""
    text = " ".join(words)
    if _is_image(words[0]) or (words[0] in _DETERMINERS and _is_image(" ".join(words[:2]))):
        return GLOBAL_TUPLE
    match = re.match(rf"^(.+?)\s+(?:{HOLDING_VERBS})\s+(.+)$", text)
    if match:
        return _add(match.group(2))
    match = re.match(
        r"^(.+?)\s+(?:look|looks|appear|seem|become|turn|get)\s+(?:like\s+)?(.+)$", text
    )
    if match:
        if _is_image(match.group(1)):
            return GLOBAL_TUPLE
        return _transform_or_attribute(match.group(1), match.group(2))
    match = re.match(r"^(.+?)\s+into\s+(.+)$", text)
    if match:
        return _transform(match.group(1), match.group(2))
    # "make the horse a zebra": an article starts the new object.
    match = re.match(r"^((?:the |his |her |their |its |this |that )?.+?)\s+(a|an)\s+(.+)$", text)
    if match and not match.group(1).endswith((" of", " with")):
        return _transform(match.group(1), match.group(3))
    # The attribute is the longest tail of attribute words, else the last word.
    tail = len(words)
    while (
        tail > 2
        and words[tail - 1] in ATTRIBUTE_WORDS | {"and"}
        and (words[tail - 2] in ATTRIBUTE_WORDS)
    ):
        tail -= 1
    tail = min(tail, len(words) - 1)
    # "more vibrant", "much older": the degree word belongs to the attribute.
    while tail > 1 and words[tail - 1] in {"more", "less", "much", "very", "a bit", "slightly"}:
        tail -= 1
    obj, attribute = " ".join(words[:tail]), " ".join(words[tail:])
    # "make the lighting warmer", "make the colors more vibrant": whole-image properties.
    if _is_image(obj) or _head(concept_phrase(obj)) in _IMAGE_PROPERTIES:
        return GLOBAL_TUPLE
    if not concept_phrase(obj):
        return GLOBAL_TUPLE
    return _attribute(obj, attribute)


def _transform_or_attribute(obj: str, target: str) -> EditTuple:
    target_words = concept_phrase(target, keep_placement=True).split()
    if target.startswith(("a ", "an ")) and len(target_words) >= 1:
        return _transform(obj, target)
    return _attribute(obj, target)


def _be(subject: str, predicate: str) -> EditTuple:
    """``SUBJECT is/should be/was PREDICATE``."""
    predicate = predicate.strip()
    if re.match(r"^(?:gone|removed|deleted|erased|not there|missing|absent|no more)$", predicate):
        return _remove(subject)
    if _is_image(subject):
        return GLOBAL_TUPLE
    match = re.match(
        rf"^(?:\w+ing\s+)?(?:{HOLDING_VERBS}|holding|wearing|carrying|having)\s+(.+)$", predicate
    )
    if match and re.match(r"^(?:holding|wearing|carrying|having)\b", predicate):
        return _add(match.group(1))
    if predicate.startswith(("a ", "an ", "the ", "some ")) or " into " in predicate:
        return _transform(subject, predicate.split(" into ")[-1])
    return _attribute(subject, predicate)


# ----------------------------------------------------------------------------- rules

Rule = tuple[re.Pattern[str], Callable[..., EditTuple]]


def _rule(pattern: str, handler: Callable[..., EditTuple]) -> Rule:
    return re.compile(pattern), handler


_OBJ = r"(.+?)"
_REST = r"(.+)"

#: Tried in order; the first pattern that matches (``fullmatch``) and whose handler
#: returns a tuple wins. Global phrasings come first so that "turn the photo into a
#: watercolor painting" is not read as a replacement.
RULES: tuple[Rule, ...] = (
    # --- global
    _rule(r".*\bin the style of\b.*", lambda: GLOBAL_TUPLE),
    _rule(r"(?:apply|use|give it|give the (?:image|photo|picture)) .*", lambda: GLOBAL_TUPLE),
    _rule(
        r"(?:increase|decrease|boost|reduce|raise|lower|enhance|adjust|improve|add more|"
        r"remove some) (?:the )?(?:contrast|brightness|saturation|exposure|sharpness|"
        r"lighting|colou?rs?|warmth|vibrance)\b.*",
        lambda: GLOBAL_TUPLE,
    ),
    _rule(
        r"(?:change|set|switch|make) the (?:season|weather|time of day|time|lighting|"
        r"style|mood|atmosphere|colou?r grading)\b.*",
        lambda: GLOBAL_TUPLE,
    ),
    _rule(
        r"(?:convert|render|transform|turn|change|make)(?: (?:it|this|the (?:whole |entire )?"
        r"(?:image|photo|photograph|picture|scene)))? (?:to|into|as|in|look like)\b.*",
        lambda: GLOBAL_TUPLE,
    ),
    _rule(
        r"(?:render|draw|redraw|paint|reimagine|recreate) (?:it|this|the (?:image|photo|"
        r"picture|scene))\b.*",
        lambda: GLOBAL_TUPLE,
    ),
    _rule(r"(?:have|let) it be\b.*", lambda: GLOBAL_TUPLE),
    _rule(
        r"what would (?:it|this|the (?:image|photo|picture|scene)) look like\b.*",
        lambda: GLOBAL_TUPLE,
    ),
    _rule(r"what if it (?:was|were|is)\b.*", lambda: GLOBAL_TUPLE),
    _rule(
        r"(?:turn|change|convert|transform) (?:the )?(?:day|daytime|night|nighttime|"
        r"summer|winter|spring|autumn|fall|morning|evening) (?:in)?to .*",
        lambda: GLOBAL_TUPLE,
    ),
    # --- remove
    _rule(
        rf"(?:remove|delete|erase|eliminate|get rid of|take out|take away|wipe out|"
        rf"wipe away|wipe off|clear away|clean up|cut out|crop out|erase away|"
        rf"do away with|lose|drop) {_REST}",
        _remove,
    ),
    _rule(rf"(?:take|get|pull|move) {_OBJ} (?:out of|off|away from|out)(?: .*)?", _remove),
    _rule(rf"clear (?:the )?\w+(?: \w+)? of {_REST}", _remove),
    _rule(rf"(?:no more|without|no) {_REST}", _remove),
    _rule(rf"let there be no {_REST}", _remove),
    _rule(rf"(?:there should be|there is|there are) no {_REST}", _remove),
    _rule(rf"what if {_OBJ} (?:was|were|is) (?:not there|gone|missing|absent)", _remove),
    # --- replace (explicit two-concept verbs)
    _rule(
        rf"(?:replace|substitute|swap out|swap|exchange|switch) {_OBJ} (?:with|by|for|to) {_REST}",
        _transform,
    ),
    _rule(
        rf"instead of {_OBJ},? (?:put|add|place|have|use|show|draw) {_REST}",
        lambda a, b: _transform(a, b),
    ),
    _rule(rf"(?:turn|transform|convert|change|morph|make) {_OBJ} into {_REST}", _transform),
    _rule(r"change (?:the )?(?:colou?r|shade) of (.+?) (?:to|into) (.+)", _attribute),
    _rule(
        rf"change {_OBJ}(?:'s| s) (?:expression|colou?r|pose|mood|emotion|hair colou?r|"
        rf"material|texture|look) (?:to|into) {_REST}",
        _attribute,
    ),
    _rule(
        rf"change {_OBJ} from (.+?) to {_REST}",
        lambda obj, old, new: EditTuple(
            f"{concept_phrase(old, keep_placement=True)} {concept_phrase(obj)}",
            f"{concept_phrase(new, keep_placement=True)} {concept_phrase(obj)}",
            "attribute change",
        ),
    ),
    _rule(rf"(?:change|switch|alter|modify) {_OBJ} (?:to|into|with) {_REST}", _transform),
    # --- attribute change by colouring verbs
    _rule(
        rf"(?:colou?r|recolou?r|paint|dye|tint|turn) {_OBJ} (?:to |in |into )?((?:{'|'.join(sorted(COLOURS))})(?: (?:and|\w+))*)",
        _attribute,
    ),
    # --- add with a wearer or holder
    _rule(rf"(?:let|have|make) {_OBJ} (?:{HOLDING_VERBS}) {_REST}", lambda who, what: _add(what)),
    _rule(rf"give {_OBJ} (?:a|an|some) {_REST}", lambda who, what: _add(what)),
    _rule(rf"give (?:him|her|them|it|the \w+) {_REST}", _add),
    _rule(
        rf"(?:add|put|place|insert|include|draw|paint|plant|drop|attach|stick|hang|"
        rf"introduce|position|set|throw in|bring in|bring|create|generate|show) {_REST}",
        _add,
    ),
    _rule(
        rf"(?:let there be|there should be|there is|there are|there will be|"
        rf"there needs to be|have there be) {_REST}",
        _add,
    ),
    _rule(rf"what if there (?:was|were|is) {_REST}", _add),
    # --- make X Y
    _rule(r"make (\S+) (.+)", _make),
    # --- "let X be Y", "X should be Y", "what if X was Y", "X is now Y"
    _rule(rf"(?:let|have) {_OBJ} be {_REST}", _be),
    _rule(rf"what if {_OBJ} (?:was|were|is|became) {_REST}", _be),
    _rule(
        rf"{_OBJ} (?:is|are|was|were) (gone|removed|deleted|erased|missing|absent)(?: now)?",
        lambda subject, _: _remove(subject),
    ),
    _rule(
        rf"{_OBJ} (?:should be|should become|is now|are now|becomes|become|must be|"
        rf"will be|needs to be|looks|look) {_REST}",
        _be,
    ),
    _rule(rf"(?:turn|transform|change) {_OBJ} (\w+)", _attribute),
)


def parse_rules(instruction: str) -> EditTuple:
    """The rule parser's tuple for one instruction (``global`` when no rule applies)."""
    text = _clean(instruction)
    if not text:
        return GLOBAL_TUPLE
    for pattern, handler in RULES:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        result = handler(*match.groups())
        if result is not None:
            return result
    return GLOBAL_TUPLE


class RuleParser:
    """The rule parser as an object with the LLM parser's interface."""

    #: Parser identity, part of the cache key.
    name = "rules-v1"

    def parse(self, instructions: list[str]) -> list[EditTuple]:
        return [parse_rules(text) for text in instructions]
