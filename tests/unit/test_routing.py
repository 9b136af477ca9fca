import pytest

from sprout.core.routing import Intent, Route, route


@pytest.mark.parametrize(
    ("text", "intent", "argument"),
    [
        ("Explain why is the sky blue?", Intent.EXPLAIN, "why is the sky blue?"),
        ("  explain: Why do cats purr?", Intent.EXPLAIN, "Why do cats purr?"),
        ("EXPLAIN rainbows", Intent.EXPLAIN, "rainbows"),
        ("*Explain* the sea", Intent.EXPLAIN, "the sea"),
        ("Activities dinosaurs", Intent.ACTIVITIES, "dinosaurs"),
        ("activity Big Red Buses", Intent.ACTIVITIES, "Big Red Buses"),
        ("ACTIVITIES - autumn leaves", Intent.ACTIVITIES, "autumn leaves"),
        ("Activities:Rain", Intent.ACTIVITIES, "Rain"),
        ("explain", Intent.EXPLAIN, ""),
        ("Activities   ", Intent.ACTIVITIES, ""),
    ],
)
def test_commands_are_forgiving_and_keep_the_users_words(
    text: str, intent: Intent, argument: str
) -> None:
    result = route(text)
    assert (result.intent, result.argument) == (intent, argument)


@pytest.mark.parametrize("text", ["🦕", "...", "  "])
def test_a_message_without_words_gets_the_help_text(text: str) -> None:
    assert route(text).intent is Intent.HELP


@pytest.mark.parametrize("text", ["another one please", "Simpler?", "my son is 2", "🦕 roar"])
def test_anything_unplaced_later_is_conversation_in_the_users_words(text: str) -> None:
    assert route(text) == Route(Intent.CHAT, text)


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("Hi!", Intent.HELP),
        ("Good morning!", Intent.HELP),
        ("Bore da", Intent.HELP),
        ("  hello ", Intent.HELP),
        ("", Intent.HELP),
        ("Settings", Intent.SETTINGS),
        ("reset", Intent.RESET),
        ("New", Intent.RESET),
        ("Forget me!", Intent.FORGET),
        ("delete my data", Intent.FORGET),
        ("STOP", Intent.STOP),
        ("start", Intent.START),
        ("Olvídame", Intent.FORGET),
        ("Esbonia pam mae'r awyr yn las", Intent.EXPLAIN),
        ("Actividades dinosaurios", Intent.ACTIVITIES),
    ],
)
def test_commands(text: str, intent: Intent) -> None:
    assert route(text).intent is intent


def test_stop_only_as_a_whole_message() -> None:
    assert route("stop the car game, what else?").intent is Intent.CHAT


def test_settings_with_words_carries_them() -> None:
    assert route("settings: my son is 2") == Route(Intent.SETTINGS, "my son is 2")


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Hola", "es"),
        ("Buenos días", "es"),
        ("Explica la lluvia", "es"),
        ("Shwmae", "cy"),
        ("Explain rain", None),
    ],
)
def test_command_words_tell_the_language_of_fixed_texts(text: str, language: str | None) -> None:
    assert route(text).language == language


@pytest.mark.parametrize(
    ("text", "intent", "language"),
    [
        ("No research", Intent.NO_RESEARCH, None),
        ("no research.", Intent.NO_RESEARCH, None),
        ("Sin investigación", Intent.NO_RESEARCH, "es"),
        ("sin investigacion", Intent.NO_RESEARCH, "es"),
        ("Dim ymchwil", Intent.NO_RESEARCH, "cy"),
        ("Research OK", Intent.RESEARCH_OK, None),
        ("investigación sí", Intent.RESEARCH_OK, "es"),
        ("ymchwil iawn", Intent.RESEARCH_OK, "cy"),
    ],
)
def test_no_research_and_its_undoing_in_each_language(
    text: str, intent: Intent, language: str | None
) -> None:
    assert route(text) == Route(intent, language=language)


def test_no_research_only_as_a_whole_message() -> None:
    assert route("is there no research on screen time?").intent is Intent.CHAT
