"""The package's vendor constants are the header's: every #define of Include/tensorguard-pkcs11.h, same value."""
import os
import re

import tensorguard_pkcs11 as tg
from conftest import REPO


def header_defines() -> dict:
    text = open(os.path.join(REPO, "Include", "tensorguard-pkcs11.h")).read()
    return {m.group(1): int(m.group(2), 0) for m in
            re.finditer(r"^#define\s+(CK[A-Z]_TG_\w+)\s+(0x[0-9A-Fa-f]+|\d+)UL?\b", text, re.M)}


def test_every_header_value_is_in_the_package():
    defines = header_defines()
    assert len(defines) >= 14, defines
    assert defines == tg.constants.HEADER_VALUES


def test_decrypt_rule_names_match_tg_pkcs11():
    assert tg.constants.DECRYPT_RULES == {"seeded-once": tg.constants.CKV_TG_N2HE_SEEDED_ONCE,
                                          "raw": tg.constants.CKV_TG_N2HE_RAW}


def test_version_and_typing_marker():
    assert re.fullmatch(r"\d+\.\d+\.\d+", tg.__version__)
    assert os.path.isfile(os.path.join(os.path.dirname(tg.__file__), "py.typed"))
    pyproject = open(os.path.join(REPO, "python", "pyproject.toml")).read()
    assert 'name = "tensorguard-pkcs11"' in pyproject and "python-pkcs11" in pyproject and "numpy" in pyproject
