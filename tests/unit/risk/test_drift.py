"""Continuous session risk: the drift decision table, one row per case, owners' ordinary moves included."""

import pytest

from authsvc.risk.drift import AITM_WINDOW, END, REAUTH, ALLOW, Birth, Use, assess, browser_key

T0 = 1_800_000_000.0
BIRTH = Birth(prefix="198.51.100.0/24", browser="Chrome|Windows", asn="AS3320", country="DE", created=T0)

CHROME_WIN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36"
CHROME_WIN_NEWER = CHROME_WIN.replace("141.0.0.0", "142.0.0.0")
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"


@pytest.mark.parametrize("use,action,code", [
    (Use(prefix=BIRTH.prefix, browser="Chrome|Windows", now=T0 + 60), ALLOW, None),
    # A browser update changes the version only.
    (Use(prefix=BIRTH.prefix, browser="Chrome|Windows", now=T0 + 86000), ALLOW, None),
    (Use(prefix=BIRTH.prefix, browser="Firefox|Linux", now=T0 + 60), END, "browser_changed"),
    # The phishing-proxy signature: a cloud host's network minutes after the sign-in.
    (Use(prefix="203.0.113.0/24", browser="Chrome|Windows", asn="AS14061", country="DE", now=T0 + 300, hosting=True),
     REAUTH, "new_network_soon"),
    # A phone moving from home Wi-Fi to its carrier minutes after the sign-in is not it.
    (Use(prefix="203.0.113.0/24", browser="Chrome|Windows", asn="AS3209", country="DE", now=T0 + 300),
     ALLOW, None),
    # The same move hours later (home → office) is the owner's day.
    (Use(prefix="203.0.113.0/24", browser="Chrome|Windows", asn="AS14061", country="DE", now=T0 + AITM_WINDOW + 60),
     ALLOW, None),
    # Another /24 of the same provider minutes later (carrier NAT, DHCP) is not a move between providers.
    (Use(prefix="198.51.101.0/24", browser="Chrome|Windows", asn="AS3320", country="DE", now=T0 + 120), ALLOW, None),
    (Use(prefix="192.0.2.0/24", browser="Chrome|Windows", asn="AS3320", country="BR", now=T0 + 40000),
     REAUTH, "new_country"),
    (Use(prefix="192.0.2.0/24", browser="Chrome|Windows", asn="AS3320", country="DE", now=T0 + 500, switches=3),
     END, "two_networks"),
    # A phone leaving Wi-Fi and coming back: two switches.
    (Use(prefix=BIRTH.prefix, browser="Chrome|Windows", asn="AS3320", country="DE", now=T0 + 500, switches=2),
     ALLOW, None),
])
def test_drift_table(use, action, code):
    d = assess(BIRTH, use)
    assert d.action == action
    assert (d.reasons[0].code if d.reasons else None) == code


def test_born_on_a_hosting_network_then_moved_minutes_later_is_the_proxy_signature():
    proxy_birth = Birth(prefix="192.0.2.0/24", browser="Chrome|Windows", asn="AS14061", country="DE", created=T0,
                        hosting=True)
    d = assess(proxy_birth, Use(prefix=BIRTH.prefix, browser="Chrome|Windows", asn="AS3320", country="DE",
                                now=T0 + 240))
    assert d.action == REAUTH and d.reasons[0].text.endswith("4 min after sign-in")


def test_hosting_heuristic():
    from authsvc.risk.drift import is_hosting

    assert is_hosting("AS14061", None) and is_hosting("AS99999", "Example Cloud Hosting Ltd")
    assert not is_hosting("AS3320", "Deutsche Telekom AG") and not is_hosting(None, None)


def test_most_severe_wins_and_every_reason_is_kept():
    d = assess(BIRTH, Use(prefix="192.0.2.0/24", browser="Firefox|Linux", asn="AS1", country="BR", now=T0 + 60,
                          hosting=True))
    assert d.action == END
    assert {r.code for r in d.reasons} == {"browser_changed", "new_network_soon", "new_country"}
    assert all(r.text and "risk score" not in r.text for r in d.reasons)


def test_sessions_born_without_context_are_never_judged_on_it():
    assert assess(Birth(), Use(prefix="192.0.2.0/24", browser="Firefox|Linux", asn="AS1", country="BR",
                               now=T0)).action == ALLOW


def test_browser_key_ignores_versions():
    assert browser_key(CHROME_WIN) == browser_key(CHROME_WIN_NEWER) == "Chrome|Windows"
    assert browser_key(FIREFOX_LINUX) == "Firefox|Linux"
    assert browser_key(None) == ""


# --- refresh-token families: the same assess, through pack_birth / assess_token_use ---------------------------------
def test_token_birth_round_trips_and_bad_packs_are_not_scored():
    from authsvc.risk.drift import pack_birth, unpack_birth

    packed = pack_birth("192.0.2.0/24", "AS14061", "NL", T0, True)
    assert unpack_birth(packed) == Birth(prefix="192.0.2.0/24", asn="AS14061", country="NL", created=T0, hosting=True)
    v6 = pack_birth("2001:db8:1::/48", "", "", T0, False)
    assert unpack_birth(v6).prefix == "2001:db8:1::/48"
    assert pack_birth("", "AS1", "DE", T0, False) == ""
    for bad in (None, "", "2|x|a|b|1|", "1||a|b|1|", "1|p|a|b|soon|", "1|p|a"):
        assert unpack_birth(bad) is None


def test_token_use_costs_no_geo_lookup_on_the_birth_network_and_uses_the_session_table_elsewhere():
    from authsvc.risk.drift import assess_token_use, pack_birth
    from authsvc.risk.geo import GeoInfo

    calls = []
    table = {"198.51.100.9": GeoInfo("AS3320", "DE"), "100.64.0.5": GeoInfo("AS28573", "BR"),
             "203.0.113.9": GeoInfo("AS2119", "DE")}

    def geo(ip):
        calls.append(ip)
        return table.get(ip)

    home = pack_birth("198.51.100.0/24", "AS3320", "DE", T0, False)
    assert assess_token_use(home, "198.51.100.9", T0 + 60, geo).action == ALLOW and calls == []
    abroad = assess_token_use(home, "100.64.0.5", T0 + 86400, geo)
    assert abroad.action == REAUTH and [r.code for r in abroad.reasons] == ["new_country"]
    assert assess_token_use(home, "203.0.113.9", T0 + 60, geo).action == ALLOW  # no hosting side: not AiTM
    proxy = pack_birth("192.0.2.0/24", "AS14061", "DE", T0, True)
    soon = assess_token_use(proxy, "203.0.113.9", T0 + 300, geo)
    assert [r.code for r in soon.reasons] == ["new_network_soon"]
    assert assess_token_use(proxy, "203.0.113.9", T0 + AITM_WINDOW + 60, geo).action == ALLOW
    assert assess_token_use("", "100.64.0.5", T0, geo).action == ALLOW  # born before scoring / confidential
    assert assess_token_use(home, "not an address", T0, geo).action == ALLOW


def test_a_missing_user_agent_on_a_session_born_with_one_is_a_browser_change():
    """Found by an outside attack: no User-Agent (or an empty one) skipped the browser check."""
    d = assess(BIRTH, Use(prefix=BIRTH.prefix, browser="", now=T0 + 60))
    assert d.action == END and d.reasons[0].code == "browser_changed"
