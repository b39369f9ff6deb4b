"""Split a prompt with several steps into ordered segment texts (stdlib only, deterministic).

`split_steps("a person walks forward, then waves, then sits down")` ->
`["a person walks forward", "a person waves", "a person sits down"]`; a prompt with one
step comes back as one segment: the prompt itself, only trimmed.

Where a prompt splits (each rule is applied inside the pieces the previous rules made):
1. Lines and numbered steps: every non-empty line is a step (a leading bullet `-`, `*`,
   `•` is dropped), and so is every numbered step `1. ... 2. ...` / `1) ... 2) ...` /
   `step 1: ...`, when the numbers count up from 1 ("walks 2 steps" is not a marker).
2. Sentences: `.`, `!`, `?` and `;` followed by a space or the end ("2.5 m" does not split).
3. Sequence words, in the order written: "then", "and then", "after that", "after this",
   "after which", "afterwards", "followed by", "next" (at the start of a clause, not
   "next to"), "finally", "lastly", "subsequently", "and later"; a comma around them is
   part of the connector. "every now and then" is not a connector.
4. Order words, which may reverse the order of the text: "A before B" -> A, B;
   "before A, B" -> B, A; "A after B" -> B, A; "after A, B" -> A, B. A "before"/"after"
   in the middle counts only when a clause follows it: "after" must be followed by an
   -ing verb or a subject ("bows after jumping", "sits after he turns"), so "runs after
   the ball" stays one step; "as before" / "than before" never split.
5. Comma lists: a comma splits only when what follows starts a new action. A part that
   starts with an adverb (-ly), a preposition ("with", "in", "to", "while"...), a
   direction ("left", "forward", "up"...), a count ("twice", "three times"), a
   determiner or an -ing participle is a detail of the previous step ("waves with the
   left hand, slowly" and "walks, swinging the arms" are one step each); a leading detail
   ("slowly, a person walks") belongs to the step after it, and so does a subject alone
   ("a person, standing still, waves"). In a list of two or more actions the last
   "and" also splits ("crouches, jumps and lands").
6. A plain "and" never splits: "walks left and right", "jumps up and down", "walks and
   waves" are one step each (retrieval handles "A and B" as one clip; say "then" for a
   sequence). "while", "until", "as" never split either.

Each segment reads as a standalone query: leading "and", "first", "firstly", "at first"
are dropped, and when the prompt names a subject ("a person", "the man", "she"...) a
segment without one gets it ("a person walks, then waves" -> "a person waves"), because
the library's captions are written that way ("a person waves ..."), so the segment
scores like a caption would; a segment that starts with a noun phrase ("followed by a
jump" -> "a jump") is left as it is. A segment that is only a direction, a place or a
body part ("walks forward, then backward", "waves the left hand, then the right hand")
borrows the previous step's verb -> "walks backward", "waves the right hand".
"""
from __future__ import annotations

import re

__all__ = ["split_steps", "is_sequence"]

# Rule 1: a bullet at the start of a line; a step number ("1.", "2)", "step 3:").
_BULLET = re.compile(r"^\s*[-*\u2022]\s+")
_STEP_NUMBER = re.compile(r"(?:(?<=\s)|^)(?:step\s+)?(\d{1,2})[.):](?=\s)", re.IGNORECASE)
# Rule 2: sentence ends (not a decimal point, not inside "2.5").
_SENTENCE_END = re.compile(r"(?<=\D)[.!?;]+(?=\s|$)|;")
# Rule 3: connectors that keep the written order; a comma on either side belongs to them.
_FORWARD = re.compile(
    r"\s*,?\s*\b(?:"
    r"(?<!\bnow )and then|(?<!\bnow and )(?<!\band )then"
    r"|(?:and )?after (?:that|this|which)|(?:and )?afterwards?"
    r"|followed by|(?:and )?finally|(?:and )?lastly|subsequently|and later"
    r"|(?:and next|(?:(?<=^)|(?<=,)|(?<=, ))next)(?! to\b)"
    r")\b\s*,?\s*",
    re.IGNORECASE)
# Rule 4: "before"/"after" in the middle of a clause, and at its start ("Before X, Y").
_MIDDLE_BEFORE = re.compile(r"\s*,?\s+(?:just |right |shortly )?before\s+", re.IGNORECASE)
_MIDDLE_AFTER = re.compile(r"\s*,?\s+(?:just |right |shortly )?after\s+", re.IGNORECASE)
_LEADING_ORDER = re.compile(r"^(before|after)\s+([^,]+),\s*(.+)$", re.IGNORECASE)
_NOT_BEFORE = ("as", "than", "like", "ever", "never")
# What makes "after X" a clause (so "runs after the dog" stays one step).
_SUBJECT = re.compile(
    r"^(?:he|she|they|someone|somebody"
    r"|(?:a|an|the|this|that)\s+(?:[a-z]+\s+)?(?:person|man|woman|figure|character|guy|girl|boy"
    r"|human|individual|actor|dancer|player|lady|child|kid|subject|avatar))\b",
    re.IGNORECASE)

# Rule 5: the first word of a comma part that makes it a detail of the previous step.
_PREPOSITIONS = {
    "with", "without", "in", "into", "on", "onto", "at", "to", "toward", "towards", "from", "by",
    "using", "like", "as", "while", "for", "around", "across", "over", "under", "through",
    "along", "behind", "between", "near", "until", "of", "about", "whilst", "when", "keeping",
}
_DIRECTIONS = {
    "left", "right", "forward", "forwards", "backward", "backwards", "back", "up", "down",
    "sideways", "clockwise", "counterclockwise", "anticlockwise", "upward", "upwards",
    "downward", "downwards", "inward", "outward", "still", "again", "straight",
}
_COUNTS = {"once", "twice", "thrice", "repeatedly", "several", "two", "three", "four", "five",
           "six", "seven", "eight", "nine", "ten", "many", "a", "an", "the", "his", "her",
           "their", "its", "both", "each", "one", "some", "all", "not", "very", "fast", "slow"}
_NOT_ADVERBS = {"fly"}
# "the right hand", "his other arm": a body part, with no verb of its own.
_POSSESSIVES = {"the", "his", "her", "their", "its", "both"}
_LIMB_WORDS = {"left", "right", "other", "both", "hand", "hands", "arm", "arms", "leg", "legs", "foot",
               "feet", "knee", "knees", "head", "shoulder", "shoulders", "elbow", "elbows", "hip", "hips",
               "wrist", "wrists", "fist", "fists"}  # verbs ending in -ly
_DROPPED_LEADS = re.compile(r"^(?:(?:and|at first|first of all|firstly|first)\b,?\s*)+", re.IGNORECASE)
_VERB_SKIPS = re.compile(r"^(?:\w+ly\s+)*", re.IGNORECASE)  # adverbs before a verb


def split_steps(prompt: str) -> list[str]:
    """The ordered step texts of a prompt (see the module docstring for the rules).

    One step: [prompt.strip()]. A blank prompt: []. Never raises on a string.
    """
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
    if not prompt.strip():
        return []
    steps = [step for piece in _lines_and_numbers(prompt) for step in _steps_of_piece(piece)]
    steps = [cleaned for cleaned in (_clean(step) for step in steps) if cleaned]
    if len(steps) <= 1:
        return [prompt.strip()]
    return _standalone(steps)


def is_sequence(prompt: str) -> bool:
    """True when the prompt has two or more steps."""
    return len(split_steps(prompt)) > 1


# ---------------------------------------------------------------- rule 1 and 2

def _lines_and_numbers(prompt: str) -> list[str]:
    pieces = []
    for line in prompt.splitlines():
        line = _BULLET.sub("", line)
        pieces.extend(_numbered_steps(" ".join(line.split())))
    return [piece for piece in pieces if piece]


def _numbered_steps(line: str) -> list[str]:
    """Cut a line at step numbers that count 1, 2, 3... from its start."""
    cuts, expected = [], 1
    for match in _STEP_NUMBER.finditer(line):
        if int(match.group(1)) != expected or (expected == 1 and line[:match.start()].strip()):
            continue
        cuts.append(match)
        expected += 1
    if len(cuts) < 2:
        return [line]
    ends = [match.start() for match in cuts[1:]] + [len(line)]
    return [line[match.end():end].strip() for match, end in zip(cuts, ends)]


def _steps_of_piece(piece: str) -> list[str]:
    steps = []
    for sentence in _SENTENCE_END.split(piece):
        for clause in _FORWARD.split(sentence.strip()):
            for ordered in _in_time_order(clause.strip()):
                steps.extend(_comma_steps(ordered))
    return steps


# ---------------------------------------------------------------- rule 4

def _in_time_order(clause: str) -> list[str]:
    """Apply "before"/"after": the clause's parts in the order they happen."""
    if not clause:
        return []
    leading = _LEADING_ORDER.match(clause)
    if leading:
        word, first, rest = leading.group(1).lower(), leading.group(2), leading.group(3)
        if word == "before":
            return _in_time_order(rest) + [first]
        return [first] + _in_time_order(rest)
    for pattern, reverse in ((_MIDDLE_BEFORE, False), (_MIDDLE_AFTER, True)):
        for match in pattern.finditer(clause):
            left, right = clause[:match.start()].strip(), clause[match.end():].strip()
            if _is_order_split(left, right, reverse):
                later = _in_time_order(right)
                return later + [left] if reverse else [left] + later
    return [clause]


def _is_order_split(left: str, right: str, after: bool) -> bool:
    if not left or not right:
        return False
    if left.split()[-1].lower() in _NOT_BEFORE:
        return False
    if not after:
        return True
    first_word = right.split()[0].lower()
    return first_word.endswith("ing") or bool(_SUBJECT.match(right))


# ---------------------------------------------------------------- rule 5

def _comma_steps(clause: str) -> list[str]:
    """Split a clause at commas that start a new action; details join their step."""
    parts = [part.strip() for part in clause.split(",") if part.strip()]
    steps: list[str] = []
    pending = ""  # a leading detail or a bare subject, waiting for its action
    for part in parts:
        if pending:
            pending = f"{pending}, {part}"
            if _starts_action(part) and not _is_bare_subject(part):
                steps.append(pending)
                pending = ""
        elif not _starts_action(part) and steps:
            steps[-1] = f"{steps[-1]}, {part}"
        elif not _starts_action(part) or _is_bare_subject(part):
            pending = part
        else:
            steps.append(part)
    if pending:
        steps.append(pending)
    return _split_last_and(steps)


def _starts_action(part: str) -> bool:
    words = _DROPPED_LEADS.sub("", part).split()
    if not words:
        return False
    first = words[0].lower().strip("\"'()")
    if _SUBJECT.match(" ".join(words)):
        return True
    if first in _PREPOSITIONS or first in _DIRECTIONS or first in _COUNTS or first.isdigit():
        return False
    if first.endswith("ly") and first not in _NOT_ADVERBS:
        return False
    return not first.endswith("ing")


def _is_bare_subject(part: str) -> bool:
    match = _SUBJECT.match(part)
    return bool(match) and not part[match.end():].strip()


def _split_last_and(steps: list[str]) -> list[str]:
    """In a list of two or more actions, "... and <action>" ends the list with a step."""
    if len(steps) < 2:
        return steps
    head, _, tail = steps[-1].rpartition(" and ")
    if head and _starts_action(tail):
        return steps[:-1] + [head, tail]
    return steps


# ---------------------------------------------------------------- standalone texts

def _clean(step: str) -> str:
    step = step.strip(" \t,;:.!?-")
    return _DROPPED_LEADS.sub("", step).strip(" \t,;:")


def _standalone(steps: list[str]) -> list[str]:
    """Give verb-less steps the previous verb, and subject-less steps the prompt's subject."""
    subject = next((match.group(0) for match in map(_SUBJECT.match, steps) if match), None)
    result: list[str] = []
    for step in steps:
        verb = _verb_of(result[-1]) if result and _needs_verb(step) else None
        if verb:
            step = f"{verb} {step}"
        if subject and not _SUBJECT.match(step) and step.split()[0].lower() not in _COUNTS:
            step = f"{subject} {step}"
        result.append(step)
    return result


def _needs_verb(step: str) -> bool:
    """A step that is only a direction, a place or a body part ("backward", "to the
    left", "the right hand"), not an action of its own."""
    words = [word.lower() for word in step.split()]
    if words[0] in _DIRECTIONS or words[0] in _PREPOSITIONS:
        return True
    return len(words) > 1 and words[0] in _POSSESSIVES and words[1] in _LIMB_WORDS


def _verb_of(step: str) -> str | None:
    """The first word after the subject and any adverbs ("a person slowly walks" -> walks)."""
    match = _SUBJECT.match(step)
    rest = step[match.end():] if match else step
    words = _VERB_SKIPS.sub("", rest.strip()).split()
    if not words or _needs_verb(" ".join(words)):
        return None
    return words[0]
