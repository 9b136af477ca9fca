import pytest

from sprout.core.routing import Intent, route


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


@pytest.mark.parametrize("text", ["Hi", "hello!", "", "   ", "🦕", "Explainer please", "what?"])
def test_anything_unplaced_gets_help(text: str) -> None:
    assert route(text).intent is Intent.HELP
