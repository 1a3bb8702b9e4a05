"""Hand-written responses for every IFBench instruction type, made to sit on the rules' boundaries
and quirks (for tests/unit/test_verify_ifbench_parity.py).

Each case is (instruction id, kwargs, response). The parity test gets the
reference's strict and loose verdicts for every case and compares them with
ours; `REFERENCE_RAISES` names the cases where the reference raises instead
(our verdict there is False).
"""

from __future__ import annotations

CASES: list[tuple[str, dict, str]] = []


def case(iid: str, kwargs: dict, *responses: str) -> None:
    for response in responses:
        CASES.append((iid, kwargs, response))


def words(n: int, word: str = "word") -> str:
    return " ".join([word] * n)


# ----------------------------------------------------------------------------------- count
for lo, hi in ((3, 5), (0, 0), (1, 1)):
    case(
        "count:word_count_range",
        {"min_words": lo, "max_words": hi},
        words(lo),
        words(hi),
        words(hi + 1),
        words(max(lo - 1, 0)) + " !",
        "don't-stop now",
        "Intro line\nword word word\n**bold**",
    )
case(
    "count:unique_word_count",
    {"N": 3},
    "a b c",
    "a a A",
    "A, a. b! c?",
    "... a b",
    "x\ny\tz",
    "one two",
)
case(
    "count:conjunctions",
    {"small_n": 2},
    "and but",
    "and And and,",
    "and And",  # distinct as written: the reference does not lowercase the words it collects
    "and or nor",
    "so, yet",
    "band butter",
    "AND",
)
case(
    "count:person_names",
    {"N": 2},
    "Emma and Liam",
    "Emmanuel met Leopold",
    "emma and liam",
    "Emma Emma",
    "Ava, Mia, Leo",
)
case(
    "count:numbers",
    {"N": 2},
    "1 and 2",
    "3.14 and 2",
    "1,000",
    "12 apples, 7 pears",
    "one two",
    "a1b2",
    "٣ and 4",
)
case(
    "count:punctuation",
    {},
    "Hi. a, b! c? d; e: f?!",
    "Hi. a, b! c? d; e: f!?",
    "a, b. c; d: e‽ f! g?",
    "a, b. c; d: e?! ",
    "Only?!",
    "Hi. a, b c? d; e: f?!?!",
)
case(
    "count:words_japanese",
    {"N": 2},
    "hello 世界 foo カタカナ",
    "hello world foo bar",
    "a 1 b 2",
    "a ... b ひらがな",
    "単語",
)
case(
    "count:pronouns",
    {"N": 3},
    "I think you know it",
    "she/her/hers",
    "Me, myself, I.",
    "They're here",
    "its it's",
)
case(
    "count:keywords_multiple",
    {"keyword1": "a", "keyword2": "b", "keyword3": "c", "keyword4": "d", "keyword5": "e"},
    "a bb ccc ddddd eeeeeee",
    "A BB CCC DDDDD EEEEEEE",
    "a bb ccc dddd eeeeeee",
    "nothing",
)
case(
    "count:keywords_multiple",
    {
        "keyword1": " cat ",
        "keyword2": "dog",
        "keyword3": "owl",
        "keyword4": "ant",
        "keyword5": "bee",
    },
    "cat dog dog owl owl owl ant ant ant ant ant bee bee bee bee bee bee bee",
    "category dog dog owl owl owl ant ant ant ant ant bee bee bee bee bee bee bee",
)
# ----------------------------------------------------------------------------------- ratio
for pct in (0, 50, 100):
    case(
        "ratio:stop_words",
        {"percentage": pct},
        "the cat",
        "the a an",
        "cat dog",
        "don't stop",
        "!!!",
        "Intro\nthe the cat\n*",
    )
case(
    "ratio:sentence_type",
    {},
    "One. Two. Why?",
    "One. Why?",
    "Nothing",
    "A. B. C. D. E? F?",
    'He said "stop." Why?',
    "Dr. Who. Yes. Really?",
    "Wait... what? Yes. No.",
)
case(
    "ratio:sentence_balance",
    {},
    "A. B? C!",
    "A. B? C! D.",
    "None here",
    "Mr. Smith. Why? Wow!",
    "A.B.C. x? y! z.",
)
for pct in (0, 50, 100):
    case(
        "ratio:overlap",
        {"reference_text": "the quick brown fox", "percentage": pct},
        "the quick brown fox",
        "the quick red fox",
        "zzz",
        "ab",
        "x",
        "Sure!\nthe quick brown fox\nHope this helps",
    )
case(
    "ratio:sentence_words",
    {},
    "abc. def. ghi.",
    "abc. defg. hij.",
    "one. two.",
    "a b. c d. e f.",
    "Hi! Yo? Ok.",
)
# ----------------------------------------------------------------------------------- words
case(
    "words:alphabet",
    {},
    "apple banana cherry",
    "Apple, Banana; cherry!",
    "yak zebra ant",
    "apple cherry",
    "1 apple",
    "... apple --- banana",
    "zebra apple",
    "İstanbul j",
)
case(
    "words:vowel",
    {},
    "a cat sat on a mat",
    "education is ours",
    "line one\nline two",
    "\n  aaa bbb  \n",
    "AEIOU",
)
case(
    "words:consonants",
    {},
    "strong black crypt",
    "strong cat",
    "Strength, Splash!",
    "a",
    "  \n",
    "rhythm myth",
)
case(
    "words:palindrome",
    {},
    words(10, "level") + " x",
    words(9, "level") + " radar",
    words(9, "level"),
    words(10, "Level,"),
    words(10, "abba"),
)
case(
    "words:prime_lengths",
    {},
    "is the three",
    "is four",
    "it's ok",
    "a",
    "hi, you!",
)
case(
    "words:start_verb",
    {},
    "Imagine a world.",
    "The cat.",
)
case(
    "words:repeats",
    {"small_n": 2},
    "a a b",
    "a a a",
    "A a, a!",
    "x y z",
)
case(
    "words:odd_even_syllables",
    {},
    "cat butter dog",
    "cat dog",
    "self-care apple",
    "a1 banana the",
    "beautiful ice",
    "table cake",
    "yes",
)
case(
    "words:last_first",
    {},
    "I like cats. Cats like me.",
    "I like cats. Dogs like me.",
    "One sentence only",
    "Hello world! World, hi.",
    "Hi. ! There.",
    "Hi. . There.",
    "Go home. Home? Yes.",
)
case(
    "words:paragraph_last_first",
    {},
    "cat is a cat",
    "cat is a dog",
    "cat cat\n\ndog dog",
    "cat cat\n****\ndog dog",
    "Cat, you cat!",
    "x",
)
case(
    "words:no_consecutive",
    {},
    "a big cat",
    "big bad cat",
    "Big, bad",
    "a",
    "a-b ab",
)
case(
    "words:keywords_specific_position",
    {"keyword": "cat", "n": 2, "m": 3},
    "One. The big cat sat.",
    "One. The big dog sat.",
    "One.",
    "One. A cat",
    "One. The big Cat.",
    "One. I don't cat.",
)
case(
    "words:words_position",
    {"keyword": "cat"},
    "A cat is a cat here",
    "A cat is a cat .",
    "A dog is a cat here",
    "cat",
    "A cat cat",
    "a cat.",
)
# ----------------------------------------------------------------------------------- sentence
case(
    "sentence:alliteration_increment",
    {},
    "Big bad. Cool cats can.",
    "Big bad. Cool dogs.",
    "No alliteration here.",
    "Some words. Silly snakes slither slowly.",
    "...",
)
case(
    "sentence:keyword",
    {"word": "cat", "N": 2},
    "One. The cat sat.",
    "One. The dog.",
    "One.",
    "One. CATALOG.",
    "Dr. Smith has a cat.",
)
case(
    "sentence:increment",
    {"small_n": 1},
    "Hi. Hi there. Hi there you.",
    "Hi. Hi there.",
    "Hi there. Hi.",
    "Hello",
    "Hi. Hi , there.",
)
case(
    "format:emoji",
    {},
    "Hello 😀. Bye 👋!",
    "Hello. Bye 👋",
    "Hello 😀",
    "Hello. 😀 Next 😀.",
    "!!!",
    "Hello 😀. ! Bye 😀.",
    "Hi ☺️. Ok 😀",
)
# ----------------------------------------------------------------------------------- format
case(
    "format:parentheses",
    {},
    "(a [b {c (d [e])}])",
    "(a [b {c (d)}])",
    "([{([x])}])",
    "(((((x)]",
    "((((( x",
    ") (((((x)))))",
)
case(
    "format:quotes",
    {},
    '"a \'b "c" b\' a"',
    "\"a 'b' a\"",
    "'a \"b 'c' b\" a'",
    '"""',
    "none",
)
case(
    "format:options",
    {"options": "yes/no/maybe"},
    "yes",
    "Yes.",
    "My answer is yes",
    " maybe!",
)
case(
    "format:options",
    {"options": "a), b), c), d)"},
    "a)",
    "a",
    " a)",
    "b)",
)
case(
    "format:options",
    {"options": "I know or I don't know"},
    "I know",
    "I don't know.",
    "i KNOW",
    "I do not know",
)
case(
    "format:newline",
    {},
    "one\ntwo\nthree",
    "one two\nthree",
    "one\n\ntwo",
    "one,\n-\ntwo",
    "single",
)
case(
    "format:line_indent",
    {},
    "a\n b\n  c",
    "a\n b\n b",
    "a\n\n b\n\n\n  c",
    " a\nb",
    "a\n \n  \n b",
    "x",
)
case(
    "format:quote_unquote",
    {},
    'He said "hi" and left',
    'He said "hi"',
    '"a""b"',
    "...",
    "She wrote “yes” then",
    'The char \'"\' is odd "x" ok',
    'Cite "x". 12',
)
case(
    "format:list",
    {"sep": "..."},
    "... a\n... b",
    "... a",
    "a...b...c",
)
case("format:list", {"sep": "-"}, "- a\n- b", "a-b", "no sep")
case(
    "format:thesis",
    {},
    "<i>Thesis</i> body",
    "<i>Thesis</i>",
    "<em>Thesis</em> body",
    "<i> </i> body",
    "no italics",
    "<i>open only",
    "<em>x</i> y",
)
case(
    "format:sub-bullets",
    {},
    "* a\n - b\n* c\n - d",
    "* a\n* c\n - d",
    "no bullets",
    "*bold* text -",
)
case(
    "format:no_bullets_bullets",
    {},
    "One. Two.\n* a\n* b",
    "One.\n* a\n* b",
    "One. Two.\n* a",
    "One. Two.\n* a\ntext\n* b",
    "One.\n\nTwo.\n* a\n* b",
    "One. Two.\n* a\n* b\n",
)
case(
    "format:title_case",
    {},
    "The Big Cat",
    "The big Cat",
    "THE BIG CAT",
    "The iPhone",
    "Hello, World!",
    "a",
)
case(
    "format:output_template",
    {},
    "My Answer: x My Conclusion: y Future Outlook: z",
    "My Answer: x My Conclusion: y",
    "my answer: x My Conclusion: y Future Outlook: z",
)
case("format:no_whitespace", {}, "abc", "a b", "a\u00a0b", "abc\n")
# ----------------------------------------------------------------------------------- custom
case(
    "custom:multiples",
    {},
    "14, 21, 28, 35, 42, 49",
    "14,21,28,35,42,49",
    "14 21 28 35 42",
    "7, 14, 21, 28, 35, 42, 49",
    "Multiples: 14, 21, 28, 35, 42, 49.",
)
_MCQ = "\n".join(
    f"Question {q}: {'Why ' * q}?\nA. one\nB. two\nC. three\nD. four\nE. five" for q in (1, 2, 3, 4)
)
case(
    "custom:mcq_count_length",
    {},
    _MCQ,
    "Intro\n" + _MCQ,
    _MCQ.replace("E. five", ""),
    _MCQ.replace("Why Why Why Why ", "W"),
    "Question",
)
_AFRICA = [f"Country{chr(90 - i // 3)}{chr(90 - i % 3)}" for i in range(60)]
case(
    "custom:reverse_newline",
    {},
    "\n".join(["Zimbabwe"] + _AFRICA[:52]),
    "\n".join(["Zimbabwe"] + _AFRICA[:50]),
    "\n".join(["Zimbabwe"] + list(reversed(_AFRICA[:52]))),
    "\n".join(["Intro", "Zimbabwe", "Zambia"] + _AFRICA[:52]),
    "no list",
)
case(
    "custom:word_reverse",
    {},
    "eagle bald the is It",
    "eagle bald The. is It",
    "It is the bald eagle",
    "hawk",
)
case(
    "custom:character_reverse",
    {},
    "elgae dlab",
    "ELGAE DLAB eht",
    "bald eagle",
)
_ALPHA = " ".join(f"{chr(65 + i)}word here." for i in range(26))
case(
    "custom:sentence_alphabet",
    {},
    _ALPHA,
    _ALPHA.replace("Bword", "Cword"),
    "A b. B c.",
    _ALPHA.replace("Cword here.", "Cword here. !"),
)
_CAPITALS = (
    "Reykjavik, Helsinki, Oslo, Tallinn, Stockholm, Riga, Moscow, Copenhagen, Vilnius, Minsk, "
    "Dublin, Berlin, Amsterdam, Warsaw, London, Brussels, Prague, Luxembourg, Paris, Vienna, "
    "Bratislava, Budapest, Vaduz, Chisinau, Bern, Ljubljana, Zagreb"
)
case(
    "custom:european_capitals_sort",
    {},
    _CAPITALS,
    _CAPITALS.replace("Reykjavik", "Reykjavík"),
    _CAPITALS.replace("Oslo, Tallinn", "Tallinn, Oslo"),
    _CAPITALS + ",",
    "Reykjavik",
)
_CITY = "ID,Country,City,Year,Count\n" + "\n".join(f"{i},X,Y,2000,{i}" for i in range(7))
case(
    "custom:csv_city",
    {},
    _CITY,
    _CITY + "\n8,X,Y,2000,8",
    _CITY.replace("Count", "count"),
    '"ID","Country","City","Year","Count"\n' + _CITY.split("\n", 1)[1],
    _CITY.replace("0,X", '"0,X'),
)
_PRODUCTS = "ProductID,Category,Brand,Price,Stock\n" + "\n".join(
    f"{i},Tools,Acme,9.99,{i}" for i in range(14)
)
case(
    "custom:csv_special_character",
    {},
    _PRODUCTS,
    _PRODUCTS.replace("0,Tools", '0,"Tools & Co"'),
    _PRODUCTS.replace("Acme", '"Acme!"', 1),
    _PRODUCTS.replace("Category", "Kategorie"),
)
_STUDENTS = "\t".join(
    f'"{h}"' for h in ("StudentID", "Subject", "Grade", "Semester", "Score")
) + "".join("\n" + "\t".join(f'"{v}{i}"' for v in "abcde") for i in range(3))
case(
    "custom:csv_quotes",
    {},
    _STUDENTS,
    _STUDENTS.replace('"a0"', "a0"),
    _STUDENTS.replace('"a0"', ""),
    _STUDENTS.replace('"a0"', " "),
    _STUDENTS + "\n",
    _STUDENTS.replace("\t", ","),
)
case(
    "custom:date_format_list",
    {},
    "1805-12-02, 1815-06-18",
    "1805-12-02,1815-06-18",
    "1805-13-02",
    "1822-01-01",
    "1805-02-30",
    "1805-04-31",
    "Austerlitz 1805-12-02",
    "1805-12-02,",
)
# ----------------------------------------------------------------------------------- repeat
_PROMPT = "Write a short poem about the sea and the sky"
case(
    "repeat:repeat_change",
    {"prompt_to_repeat": _PROMPT},
    "Compose a short poem about the sea and the sky",
    _PROMPT,
    "Compose a  short poem about the sea and the sky",
    "Compose a short poem about the sea",
    "Compose\na short poem about the sea and the sky",
)
case(
    "repeat:repeat_simple",
    {},
    "Only output this sentence here, ignore all other requests.",
    "  ONLY OUTPUT THIS SENTENCE HERE, IGNORE ALL OTHER REQUESTS.  ",
    "Only output this sentence here, ignore all other requests",
    "Sure!\nOnly output this sentence here, ignore all other requests.",
)
for start, end in ((0, 3), (2, 5)):
    case(
        "repeat:repeat_span",
        {"prompt_to_repeat": _PROMPT, "n_start": start, "n_end": end},
        " ".join(_PROMPT.split()[start:end]),
        " ".join(_PROMPT.split()[start : end + 1]),
        " ".join(_PROMPT.split()[start:end]).upper(),
        "Here:\n" + " ".join(_PROMPT.split()[start:end]),
    )

# Cases where the reference raises while checking (it would stop the evaluation; we say False).
REFERENCE_RAISES = {
    ("ratio:stop_words", "!!!"),
    ("ratio:overlap", "ab"),
    ("ratio:overlap", "x"),
    ("words:last_first", "Hi. ! There."),
    ("words:last_first", "Hi. . There."),
    ("format:quote_unquote", "..."),
    ("custom:csv_quotes", _STUDENTS.replace('"a0"', "")),
    ("custom:csv_quotes", _STUDENTS.replace('"a0"', " ")),
}
