"""Password policy per NIST SP 800-63B-4 §3.1.1.2 and OWASP ASVS 5.0 V6.2.

Length is counted in Unicode code points after NFKC normalisation. No composition rules, no truncation, no case
folding of the secret itself. Context words and breached passwords are refused *with a reason* the user can act on.

Guessability floor: no breach list holds every "passwordpassword" or keyboard row, so what the list does not hold is
estimated with zxcvbn (repeats, sequences, keyboard patterns, dictionary words with digits — the "repetitive or
sequential characters" NIST SP 800-63B asks verifiers to refuse) and refused below ``min_guesses_log10``. Not a
composition rule: a few unrelated words pass whatever they are made of.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Protocol

from flask_babel import get_locale
from flask_babel import gettext as _


def normalize(password: str) -> str:
    """NFKC, as NIST asks, so the same password typed on two keyboards hashes the same."""
    return unicodedata.normalize("NFKC", password)


class BreachChecker(Protocol):
    def is_breached(self, password: str) -> bool: ...


@dataclass(frozen=True)
class PolicyViolation:
    code: str
    message: str


class PasswordPolicy:
    def __init__(
        self,
        *,
        min_length: int,
        min_length_with_mfa: int,
        max_length: int,
        service_name: str,
        breach_checker: BreachChecker,
        min_guesses_log10: float = 0.0,
    ):
        self.min_length = min_length
        self.min_length_with_mfa = min_length_with_mfa
        self.max_length = max_length
        self.service_name = service_name
        self.breach_checker = breach_checker
        self.min_guesses_log10 = min_guesses_log10  # 0 = no guessability floor

    def check(self, password: str, *, email: str | None = None, has_mfa: bool = False) -> list[PolicyViolation]:
        pw = normalize(password)
        problems: list[PolicyViolation] = []
        minimum = self.min_length_with_mfa if has_mfa else self.min_length
        n = len(pw)
        if n < minimum:
            problems.append(
                PolicyViolation("too_short", _("Use at least %(minimum)d characters (this one has %(n)d). A few "
                                               "unrelated words make a long password that is easy to remember.",
                                               minimum=minimum, n=n))
            )
        if n > self.max_length:
            problems.append(PolicyViolation("too_long", _("Use at most %(maximum)d characters.", maximum=self.max_length)))
        if problems:
            return problems  # no point checking the corpus for a password we refuse anyway

        lowered = pw.casefold()  # only for comparison; the secret itself is never case-folded
        for word in self._context_words(email):
            if word in lowered:
                problems.append(
                    PolicyViolation("context_word",
                                    _("Don't use your e-mail address or the service's name in your password."))
                )
                break
        if self.breach_checker.is_breached(pw):
            problems.append(
                PolicyViolation(
                    "breached",
                    _("This password appears in lists of passwords exposed in data breaches, so attackers try it "
                      "first. Choose a different one — a password manager can generate one for you."),
                )
            )
        elif self.min_guesses_log10 > 0:
            problem = self._guessable(pw)
            if problem is not None:
                problems.append(problem)
        return problems

    # zxcvbn refuses longer input (and its matching grows fast with length); a longer password is judged by its start.
    ESTIMATE_MAX = 72

    def _guessable(self, pw: str) -> PolicyViolation | None:
        from zxcvbn import zxcvbn

        result = zxcvbn(pw[: self.ESTIMATE_MAX], max_length=self.ESTIMATE_MAX)
        if result["guesses_log10"] >= self.min_guesses_log10:
            return None
        warning = (result.get("feedback") or {}).get("warning") or ""
        if warning and str(get_locale() or "en") != "en":
            warning = ""  # zxcvbn's hint exists only in English
        return PolicyViolation(
            "guessable",
            _("This password is easy to guess: it follows a pattern attackers try early (a repeated word, a keyboard "
              "row, a sequence, a common word with digits).") + (f" {warning.rstrip('.')}." if warning else "")
            + " " + _("Use a few unrelated words instead — a password manager can generate them for you."),
        )

    def _context_words(self, email: str | None) -> list[str]:
        words = {self.service_name.casefold()}
        if email:
            email = email.casefold()
            words.add(email)
            local = email.split("@", 1)[0]
            words.add(local)
        # Very short fragments ("jo") would refuse half the dictionary without adding safety.
        return [w for w in words if len(w) >= 4]
