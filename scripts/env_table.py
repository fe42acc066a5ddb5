"""Print the README's environment-variable table from ``lasl_backend.config.ENV_DOC``.

Run: ``.venv/bin/python scripts/env_table.py`` and paste the output into the README, so the table and the
code cannot drift apart (the code is the source of truth).
"""

from lasl_backend.config import ENV_DOC


def table() -> str:
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, default, meaning in ENV_DOC:
        names = " / ".join(f"`{n.strip()}`" for n in name.split("/"))
        dflt = default if default.startswith("(") else f"`{default}`"
        cell = meaning.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
        rows.append(f"| {names} | {dflt} | {cell} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
