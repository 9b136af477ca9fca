"""What a caregiver tells Sprout about their children and preferences."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

EYFS_AREAS = (
    "Communication and Language",
    "Personal, Social and Emotional Development",
    "Physical Development",
    "Literacy",
    "Mathematics",
    "Understanding the World",
    "Expressive Arts and Design",
)
LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "cy": "Welsh"}

Places = Literal["indoors", "outdoors", "both"]


class Child(BaseModel):
    age_months: int = Field(ge=0, le=12 * 12)
    name: str | None = Field(None, max_length=40)

    def age_phrase(self) -> str:
        if self.age_months < 24:
            return f"{self.age_months} months old"
        years, months = divmod(self.age_months, 12)
        return f"{years} years old" if months < 6 else f"{years} and a half years old"


class Profile(BaseModel):
    children: list[Child] = Field(default_factory=list, max_length=8)
    places: Places | None = None
    areas: list[str] = Field(default_factory=list)
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}$")

    def explain_age(self, default: str) -> str:
        """The age an explanation is pitched at: the youngest child's, so everyone follows."""
        if not self.children:
            return default
        return min(self.children, key=lambda child: child.age_months).age_phrase()

    def activity_age(self, default: str) -> str:
        if not self.children:
            return default
        phrases = [child.age_phrase() for child in self.children]
        return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]

    def language_name(self) -> str | None:
        return LANGUAGE_NAMES.get(self.language, self.language) if self.language else None

    def updated(self, arguments: dict[str, Any]) -> Profile:
        """Apply what the model extracted (the update_profile tool's arguments); fields the
        user did not mention stay as they were. Invalid values are ignored, not guessed."""
        data = self.model_dump()
        if isinstance(arguments.get("children"), list):
            data["children"] = [
                {"age_months": _months(child), "name": child.get("name")}
                for child in arguments["children"]
                if isinstance(child, dict) and _months(child) is not None
            ]
        if arguments.get("places") in ("indoors", "outdoors", "both"):
            data["places"] = arguments["places"]
        if isinstance(arguments.get("areas"), list):
            data["areas"] = [area for area in arguments["areas"] if area in EYFS_AREAS]
        if isinstance(arguments.get("language"), str):
            data["language"] = arguments["language"].strip().lower()[:3]
        try:
            return Profile.model_validate(data)
        except ValidationError:
            return self


def _months(child: dict[str, Any]) -> int | None:
    months, years = child.get("age_months"), child.get("age_years")
    total = 0.0
    if isinstance(years, int | float):
        total += years * 12
    if isinstance(months, int | float):
        total += months
    if total <= 0 and not isinstance(months, int | float):
        return None
    return round(total)
