from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from authsvc.web.forms import PASSWORD


class TotpForm(FlaskForm):
    code = StringField(_l("6-digit code from your authenticator app"), validators=[DataRequired(), Length(max=16)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9 ]*",
                                  "maxlength": "16", "spellcheck": "false"})
    remember = BooleanField(_l("Remember this device"))
    method = HiddenField(default="totp")


class RecoveryForm(FlaskForm):
    recovery_code = StringField(_l("Recovery code"), validators=[DataRequired(), Length(max=32)],
                       render_kw={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false",
                                  "maxlength": "32"})
    recovery_remember = BooleanField(_l("Remember this device"))
    method = HiddenField(default="recovery")


class ConfirmTotpForm(FlaskForm):
    code = StringField(_l("6-digit code shown by the app"), validators=[DataRequired(), Length(max=16)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9 ]*",
                                  "maxlength": "16", "spellcheck": "false"})


class PasswordConfirmForm(FlaskForm):
    password = PasswordField(_l("Password"), validators=PASSWORD, render_kw={"autocomplete": "current-password"})
    method = HiddenField(default="password")


class PasskeyNameForm(FlaskForm):
    name = StringField(_l("Name for this passkey or security key"), validators=[Length(max=64)],
                       render_kw={"autocomplete": "off", "maxlength": "64", "placeholder": _l("e.g. Laptop")})


class EmailCodeForm(FlaskForm):
    email_code = StringField(_l("Code from the e-mail"), validators=[DataRequired(), Length(max=16)],
                             render_kw={"autocomplete": "one-time-code", "inputmode": "numeric",
                                        "pattern": "[0-9 ]*", "maxlength": "16", "spellcheck": "false"})
    method = HiddenField(default="email")
