from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField
from wtforms.validators import DataRequired, Length, Optional

# Limits are generous (the policy counts code points; 1024 leaves room for any 256-code-point password in UTF-8)
# and exist so that a multi-megabyte "password" is refused before it reaches argon2.
EMAIL = [DataRequired(), Length(max=254)]
PASSWORD = [DataRequired(), Length(max=1024)]


class RegisterForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=EMAIL, render_kw={"autocomplete": "email"})
    password = PasswordField(_l("Password"), validators=PASSWORD, render_kw={"autocomplete": "new-password"})


class LoginForm(FlaskForm):
    # "webauthn" lets the browser offer saved passkeys in the field's autofill (conditional mediation).
    email = EmailField(_l("E-mail"), validators=EMAIL, render_kw={"autocomplete": "username webauthn"})
    password = PasswordField(_l("Password"), validators=PASSWORD, render_kw={"autocomplete": "current-password"})


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(_l("Current password"), validators=PASSWORD,
                                     render_kw={"autocomplete": "current-password"})
    new_password = PasswordField(_l("New password"), validators=PASSWORD, render_kw={"autocomplete": "new-password"})


class ResetRequestForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=EMAIL, render_kw={"autocomplete": "email"})


class NewPasswordForm(FlaskForm):
    new_password = PasswordField(_l("New password"), validators=PASSWORD, render_kw={"autocomplete": "new-password"})


class VerifyForm(FlaskForm):
    """Confirm an address; the password is asked for only outside the browser that registered (pre-hijack)."""

    password = PasswordField(_l("Password you chose when creating the account"), validators=[Optional(), Length(max=1024)],
                             render_kw={"autocomplete": "current-password"})


class SetupForm(RegisterForm):
    pass


class ActionForm(FlaskForm):
    """A button that changes state: only the CSRF token, plus an optional target."""

    target = HiddenField(validators=[Length(max=128)])
