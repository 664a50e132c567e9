# SPDX-License-Identifier: LGPL-2.1-or-later
"""Hiding keys in table lines, as dmsetup does without ``--showkeys``."""

from __future__ import annotations


def hide_keys(target_type: str, params: str) -> str:
    """Zero the key in crypt/integrity table lines, as dmsetup does without --showkeys."""
    if target_type == "crypt":
        cipher, sep, rest = params.partition(" ")
        if not sep or rest.startswith(":"):
            return params
        key, sep2, tail = rest.partition(" ")
        return f"{cipher} {'0' * len(key)}{sep2}{tail}"
    if target_type == "integrity":
        for name in ("internal_hash:", "journal_crypt:", "journal_mac:"):
            at = params.find(name)
            if at < 0:
                continue
            at += len(name)
            stops = [i for i in (params.find(" ", at), params.find(":", at)) if i >= 0]
            if not stops or params[min(stops)] != ":":
                continue
            start = min(stops) + 1
            end = params.find(" ", start)
            end = len(params) if end < 0 else end
            params = params[:start] + "0" * (end - start) + params[end:]
    return params
