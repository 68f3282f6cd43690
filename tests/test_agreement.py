"""LocalAgreement-2, the hypothesis guards, where a long buffer may be cut and the WER
text form (pure logic)."""

from __future__ import annotations

from dragoman.asr.agreement import (
    LocalAgreement,
    guard_repetitions,
    guard_speaking_rate,
    guard_trailing,
)
from dragoman.asr.recognizer import _continues, _ends_sentence
from dragoman.events import SAMPLE_RATE, Word
from dragoman.textnorm import join_digit_runs

S = SAMPLE_RATE


def words(text: str, start: float = 0.0, step: float = 0.3, p: float = 0.9) -> list[Word]:
    out = []
    for i, token in enumerate(text.split()):
        begin = round((start + i * step) * S)
        out.append(Word(" " + token, begin, begin + round(step * S * 0.9), p))
    return out


def texts(items: list[Word] | tuple[Word, ...]) -> list[str]:
    return [w.text.strip() for w in items]


def test_commits_the_agreed_prefix_only() -> None:
    agreement = LocalAgreement()
    assert agreement.insert(words("the door is")) == []
    committed = agreement.insert(words("the door was locked"))
    assert texts(committed) == ["the", "door"]
    assert texts(agreement.tentative) == ["was", "locked"]
    assert texts(agreement.insert(words("the door was locked."))) == ["was", "locked."]


def test_punctuation_and_case_do_not_block_agreement() -> None:
    agreement = LocalAgreement()
    agreement.insert(words("The door was locked."))
    assert texts(agreement.insert(words("the door, was Locked,"))) == [
        "the",
        "door,",
        "was",
        "Locked,",
    ]


def test_numbers_and_compounds_written_differently_agree() -> None:
    agreement = LocalAgreement()
    agreement.insert(words("to echo test dial 6 00 this"))
    committed = agreement.insert(words("to echo test dial 600 this test"))
    assert texts(committed) == ["to", "echo", "test", "dial", "600", "this"]
    assert texts(agreement.insert(words("voice mail box", start=2.0))) == []
    assert texts(agreement.insert(words("voicemail box", start=2.0))) == ["voicemail", "box"]
    # Agreement needs a word boundary in both: "door" is not yet "doorknob".
    other = LocalAgreement()
    other.insert(words("the doorknob"))
    assert texts(other.insert(words("the door"))) == ["the"]


def test_committed_words_are_not_committed_twice() -> None:
    agreement = LocalAgreement()
    agreement.insert(words("press four for"))
    agreement.insert(words("press four for the"))
    # The buffer was trimmed: the next decode starts at "for" and repeats it.
    again = words("for the next message", start=0.6)
    assert texts(agreement.insert(again)) == ["the"]  # agrees with the tentative "the"
    assert texts(agreement.insert(again)) == ["next", "message"]
    assert texts(agreement.committed) == ["press", "four", "for", "the", "next", "message"]
    # Without word times (a drifted decode) the repeated words are matched by text.
    shifted = [Word(w.text, w.start + S, w.end + S, w.probability) for w in words("next message")]
    assert agreement.insert(shifted) == [] and agreement.tentative == ()


def test_words_said_again_later_are_new_words() -> None:
    # Asterisk's conf-adminmenu-menu8: "... 2 to kick all non administrator users,
    # 3 to mute all non administrator users ...". Streaming once dropped everything
    # up to the second "non administrator users", taking it for the committed one.
    agreement = LocalAgreement()
    first = words("2 to kick all non administrator users")
    agreement.insert(first)
    agreement.insert(first)
    assert texts(agreement.committed)[-1] == "users"
    # The buffer was cut at the committed end: the next decode starts after "users".
    later = words("3 to mute all non administrator users 4 to", start=2.2)
    assert agreement.insert(later) == []
    assert texts(agreement.insert(later)) == texts(later)
    # A decode that restates the committed words still finds them by text.
    again = LocalAgreement()
    again.insert(first)
    again.insert(first)
    restated = first + words("3 to mute all non administrator users", start=2.2)
    assert texts(again.flush(restated)) == ["3", "to", "mute", "all", "non", "administrator",
                                            "users"]


def test_committed_words_restated_with_late_times_are_not_new() -> None:
    # Interim decodes interpolate word times: on real prompts (Whisper base, es) up to
    # 1.2 s late, 0.46 s at the 90th percentile. Words of Asterisk's es vm-msginstruct,
    # the buffer cut at "5.", an interim decode whose times run a second late and that
    # rehears "el" as "del": its restatement of the committed "... recuperar el mensaje"
    # looks like the speaker saying it again.
    agreement = LocalAgreement()
    said = words("marque 5. para escuchar el mensaje anterior marque 4 para borrar o "
                 "recuperar el mensaje")
    agreement.insert(said)
    agreement.insert(said)
    assert texts(agreement.committed)[-1] == "mensaje"
    cut = said[1].end  # the buffer now starts after "5."
    late = words("para escuchar el mensaje anterior marque 4 para borrar o recuperar del "
                 "mensaje marque 0 para salir", start=cut / S + 1.0)
    assert late[-5].start > agreement.committed_end  # the restated run looks later
    # By time alone, part of the restatement comes back as new words.
    assert texts(agreement.new_part(late)) == (
        "recuperar del mensaje marque 0 para salir".split())
    # Counted from the buffer's start, the committed words end at the late "mensaje".
    assert texts(agreement.new_part(late, buffer_start=cut)) == ["marque", "0", "para",
                                                                  "salir"]
    agreement.insert(late, buffer_start=cut)
    assert texts(agreement.insert(late, buffer_start=cut)) == ["marque", "0", "para", "salir"]


def test_the_last_committed_word_said_earlier_is_not_where_new_words_start() -> None:
    # The 100-prompt bench, es vm-msginstruct: "marque" was committed, then decodes
    # heard it as "Mark" / "marca"; the only "marque" left in them was the one said
    # 4.7 s earlier ("anterior, marque número 4"), which was taken for the committed one:
    # "número 4 para borrar o recuperar el mensaje" was committed a second time.
    agreement = LocalAgreement()
    said = words("anterior marque 4 para borrar o recuperar el mensaje marque")
    agreement.insert(said)
    agreement.insert(said)
    assert texts(agreement.committed)[-1] == "marque"
    reheard = words("anterior marque 4 para borrar o recuperar el mensaje marca 0 para salir")
    assert texts(agreement.new_part(reheard)) == ["0", "para", "salir"]


def test_new_words_are_found_after_a_reheard_committed_word() -> None:
    # Seen in listening mode: interim decodes committed "Sus contraiseñas han sido" with
    # interpolated times that ran late; the final decode heard "con tres señas" and
    # aligned "cambiadas." before the committed end, so matching by the last three
    # words or by time lost the last word of the utterance.
    agreement = LocalAgreement()
    interim = words("Sus contraiseñas han sido", step=0.7)
    agreement.insert(interim)
    agreement.insert(interim)
    assert agreement.committed_end > round(2.5 * S)
    final = words("Sus con tres señas han sido cambiadas.", step=0.35)
    assert final[-1].start < agreement.committed_end
    assert texts(agreement.flush(final)) == ["cambiadas."]


def test_flush_commits_the_final_hypothesis() -> None:
    agreement = LocalAgreement()
    agreement.insert(words("hello there"))
    agreement.insert(words("hello there my"))
    rest = agreement.flush(words("hello there my friend"))
    assert texts(rest) == ["my", "friend"] and agreement.tentative == ()


def test_repetition_loop_is_cut() -> None:
    loop = words("ag " + "un " * 40)
    assert texts(guard_repetitions(loop)) == ["ag", "un", "un"]
    phrase = words("please enter please enter please enter please enter your code")
    assert texts(guard_repetitions(phrase)) == ["please", "enter", "please", "enter"]
    normal = words("no no I said no")
    assert guard_repetitions(normal) == normal


def test_impossible_speaking_rate_is_cut() -> None:
    fast = words("a b c d e f g h i j k l", step=0.02)
    assert len(guard_speaking_rate(fast)) < 6
    normal = words("a b c d e f g h i j k l", step=0.3)
    assert guard_speaking_rate(normal) == normal


def test_trailing_hallucination_is_dropped() -> None:
    final = words("ha sido bloqueada.") + [Word(" y", 2 * S, 2 * S + 4000, 0.02)]
    kept = guard_trailing(final, speech_end=3 * S, min_probability=0.35)
    assert texts(kept) == ["ha", "sido", "bloqueada."]
    late = words("hola") + [Word(" adios", 3 * S, 3 * S + 100, 0.9)]
    assert texts(guard_trailing(late, speech_end=3 * S, min_probability=0.35)) == ["hola"]


def test_an_unsure_final_word_an_earlier_decode_heard_is_kept() -> None:
    """The final decode's unsure last word survives the trailing guard when an earlier,
    different hypothesis agreed on it (accents and punctuation aside); a prefetched
    final decode, already in the history, does not confirm itself."""
    agreement = LocalAgreement(history=2)
    agreement.insert(words("presione la tecla de número."), hold_after=0)
    final = words("presione la tecla de") + [Word(" numeró.", round(1.2 * S), round(1.5 * S),
                                                  0.31)]
    confirmed = agreement.confirmed(final, buffer_start=0)
    assert confirmed == 5
    kept = guard_trailing(final, speech_end=3 * S, min_probability=0.35, confirmed=confirmed)
    assert texts(kept) == ["presione", "la", "tecla", "de", "numeró."]
    # Spelled a little differently before ("numerón."): heard too, kept.
    drift = LocalAgreement(history=2)
    drift.insert(words("presione la tecla de numerón."), hold_after=0)
    assert drift.confirmed(final, buffer_start=0) == 5
    # Heard differently before ("enum..."): the unsure word is dropped as before.
    other = LocalAgreement(history=2)
    other.insert(words("presione la tecla de enum..."), hold_after=0)
    confirmed = other.confirmed(final, buffer_start=0)
    assert confirmed == 4
    kept = guard_trailing(final, speech_end=3 * S, min_probability=0.35, confirmed=confirmed)
    assert texts(kept) == ["presione", "la", "tecla", "de"]
    # The same hypothesis inserted as a prefetch, then taken as final: not a confirmation.
    alone = LocalAgreement(history=2)
    alone.insert(final, hold_after=0)
    assert alone.confirmed(final, buffer_start=0) == 0
    # A word starting after the speech is dropped even when confirmed.
    assert texts(guard_trailing(final, speech_end=round(1.2 * S), min_probability=0.35,
                                confirmed=5)) == ["presione", "la", "tecla", "de"]


def test_word_error_rate_text_joins_digit_runs_only() -> None:
    assert join_digit_runs("Dial 1 2 3 4, then 28.8!") == "dial 1234 then 288"
    assert join_digit_runs("extension 1234 and 4 2 4 2") == "extension 1234 and 4242"
    assert join_digit_runs("dial 2 now, 3 to mute") == "dial 2 now 3 to mute"


def test_a_decoder_that_alternates_commits_on_a_repeated_reading() -> None:
    classic, windowed = LocalAgreement(), LocalAgreement(history=2)
    hypotheses = ["le code est", "le côté est faux", "le code est faux", "le côté est faux"]
    committed: dict[str, list[str]] = {"classic": [], "windowed": []}
    for text in hypotheses:
        committed["classic"] += texts(classic.insert(words(text)))
        committed["windowed"] += texts(windowed.insert(words(text)))
    assert committed["classic"] == ["le"]  # stalls at the word it keeps re-reading
    # The third agrees with the first; then "faux", heard twice after "est", commits.
    assert committed["windowed"] == ["le", "code", "est", "faux"]


def test_a_full_stop_before_a_lowercase_word_or_a_digit_is_no_sentence_end() -> None:
    # Whisper base writes the Spanish "marque número 6" as "Mark No. 6": the buffer was
    # cut after "No.", and the decodes of the cut buffer lost words ("4. Para Bura",
    # "el mensaje martes"). A cut needs a full stop and then a new sentence.
    assert _ends_sentence("No.") and _continues("6") and _continues("para")
    assert _ends_sentence("5.") and not _continues("Para") and not _continues("¿Desea")
    assert not _continues("这") and not _continues("«Bonjour")  # no case: a new sentence
    assert not _ends_sentence("...") and not _ends_sentence("5.00")


def test_a_reheard_restatement_still_marks_where_new_words_start() -> None:
    # The 100-prompt bench, en agent-newlocation: interim decodes agreed on "Please
    # enter in new" with interpolated (late) times; the final decode heard "Please
    # enter a new extension, followed by pound." No run of the last committed words
    # is in it, and by time "extension" (aligned at 1.2 s) starts before the committed
    # end (1.6 s): it was dropped.
    agreement = LocalAgreement()
    interim = words("please enter in new", step=0.42)
    agreement.insert(interim, buffer_start=0)
    agreement.insert(interim, buffer_start=0)
    assert texts(agreement.committed) == ["please", "enter", "in", "new"]
    final = words("please enter a new extension followed by pound", step=0.3)
    assert final[4].start < agreement.committed_end
    assert "extension" not in texts(agreement.new_part(final))  # by time alone
    assert texts(agreement.flush(final, buffer_start=0)) == ["extension", "followed", "by",
                                                            "pound"]


def test_a_short_committed_word_after_the_cut_is_found_by_its_place() -> None:
    # en demo-instruct: the buffer was cut at "Digium."; "In" was committed after it
    # with a late interpolated end, and the next decode, "In order for this test to
    # work", lost "order" (too short a word to anchor on, and it starts before "In"'s
    # end by time).
    said = words("a demonstration server at digium. in", step=0.3)
    cut = said[4].end
    late = Word(" in", cut + S // 10, cut + S // 2, 0.9)
    agreement = LocalAgreement()
    agreement.flush([*said[:5], late])
    heard = words("in order for this test to work", start=cut / S + 0.05, step=0.2)
    assert heard[1].start < agreement.committed_end
    assert texts(agreement.new_part(heard, buffer_start=cut)) == (
        "order for this test to work".split())


def test_a_rephrased_or_skipped_restatement_falls_back_to_word_times() -> None:
    # Too few of the committed words are in the hypothesis to tell where they end.
    agreement = LocalAgreement()
    agreement.flush(words("press one to speak"))
    heard = words("oh mess on two seek with a customer", step=0.3)
    fresh = agreement.new_part(heard, buffer_start=0)
    assert texts(fresh) == [w.text.strip() for w in heard
                            if w.start >= agreement.committed_end - S // 10]


def test_a_word_reheard_as_two_is_no_new_word() -> None:
    # The 100-prompt bench, en priv-callee-options: "now and forevermore," was
    # committed, then two decodes heard "now and forever more, dial five"; aligned word
    # by word, "forever" took the committed word's place and "more." was committed as a
    # new word. Joined or split spellings are the same words.
    agreement = LocalAgreement()
    agreement.flush(words("to a polite don't call menu now and forevermore,", step=0.4))
    reheard = words("to a polite don't call menu now and forever more dial five to allow")
    assert texts(agreement.new_part(reheard, buffer_start=0)) == ["dial", "five", "to",
                                                                  "allow"]
    split = LocalAgreement()
    split.flush(words("to kick all non administrator", step=0.4))
    joined = words("to kick all non-administrator users three to mute")
    assert texts(split.new_part(joined, buffer_start=0)) == ["users", "three", "to", "mute"]
