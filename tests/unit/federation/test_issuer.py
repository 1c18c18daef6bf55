"""Microsoft multi-tenant issuer validation: the {tenantid} template is filled with the token's own tid, never a
wildcard (the nOAuth-adjacent "any tenant" mistake)."""

import pytest

from authsvc.federation.providers import issuer_matches

T = "https://login.microsoftonline.com/{tenantid}/v2.0"
TID = "9188040d-6c67-4c5b-b112-36a304b66dad"


def test_tenant_template_accepts_the_tokens_own_tenant():
    assert issuer_matches(T, f"https://login.microsoftonline.com/{TID}/v2.0", TID)


@pytest.mark.parametrize("iss,tid", [
    (f"https://login.microsoftonline.com/{TID}/v2.0", "72f988bf-86f1-41af-91ab-2d7cd011db47"),  # another tenant's tid
    (f"https://login.microsoftonline.com/{TID}/v2.0", None),
    ("https://login.microsoftonline.com/{tenantid}/v2.0", "{tenantid}"),
    ("https://login.microsoftonline.com/common/v2.0", "common"),
    (f"https://evil.example/{TID}/v2.0", TID),
    (f"https://login.microsoftonline.com/{TID}/v2.0/", TID),
    (None, TID),
    (42, TID),
    (f"https://login.microsoftonline.com/{TID}/v2.0", TID + "/../x"),
])
def test_tenant_template_refuses_everything_else(iss, tid):
    assert not issuer_matches(T, iss, tid)


def test_plain_issuer_is_an_exact_match():
    assert issuer_matches("https://accounts.google.com", "https://accounts.google.com", None)
    assert not issuer_matches("https://accounts.google.com", "accounts.google.com", None)
    assert not issuer_matches("https://accounts.google.com", "https://accounts.google.com/", None)
