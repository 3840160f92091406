import re

from r1lab.metrics import has_reflection
from r1lab.microworld.corpus import CorpusConfig, documents
from r1lab.microworld.tokenizer import TAGS, train_tokenizer
from r1lab.tasks import ArithmeticTask, CountdownTask

DOCS = list(documents(CorpusConfig(), 3000))


def test_corpus_is_deterministic():
    assert list(documents(CorpusConfig(), 50)) == DOCS[:50]
    assert list(documents(CorpusConfig(seed=1), 50)) != DOCS[:50]


def test_no_test_question_leaks_into_the_corpus():
    test_qs = {e["question"] for e in ArithmeticTask().examples("test", 300)}
    test_qs |= {e["question"] for e in CountdownTask().examples("test", 300)}
    text = "\n".join(DOCS)
    assert not any(q in text for q in test_qs)


def test_template_only_sometimes_and_tags_only_sometimes():
    templated = [d for d in DOCS if "Assistant:" in d]
    # The template itself names the tags; a tag-format answer is what the document ends with.
    tagged = [d for d in templated if d.endswith("</answer>")]
    assert 0.3 < len(templated) / len(DOCS) < 0.6
    assert 0.3 < len(tagged) / len(templated) < 0.8


def test_styles_are_mixed():
    reflective = sum(has_reflection(d) for d in DOCS) / len(DOCS)
    stepwise = sum("write" in d or "Try " in d for d in DOCS) / len(DOCS)
    assert 0.03 < reflective < 0.25
    assert 0.2 < stepwise < 0.6


def test_arithmetic_steps_are_correct_unless_slipped():
    # In a step-by-step arithmetic document with no slip, the final line is the true result.
    pat = re.compile(r"So (\d+) ([+*]) (\d+) = (\d+)\.")
    right = wrong = 0
    for d in DOCS:
        for a, op, b, r in pat.findall(d):
            true = int(a) + int(b) if op == "+" else int(a) * int(b)
            right += int(r) == true
            wrong += int(r) != true
    assert right > 0 and 0 < wrong / (right + wrong) < 0.35  # careless slips exist, rarely


def test_tokenizer_round_trips_and_keeps_tags_whole():
    tok = train_tokenizer(DOCS[:1000], vocab_size=300)
    for d in DOCS[:50]:
        assert tok.decode(tok(d)["input_ids"]) == d
    for tag in TAGS:
        assert len(tok(tag, add_special_tokens=False)["input_ids"]) == 1
    digits = tok.convert_ids_to_tokens(tok("12345")["input_ids"])
    assert digits == list("12345")
    assert tok.eos_token == tok.pad_token == "<|endoftext|>"
    assert tok.chat_template
