# Sourced by scripts/serve and scripts/test: make .venv and install the project into it.
# Usage: ensure_venv EXTRAS   (EXTRAS is "" or "[test]")
ensure_venv() {
    local extras="$1"
    if [ ! -x .venv/bin/python ]; then
        if ! python3 -m venv .venv 2>/dev/null; then
            # Debian and Ubuntu ship venv separately from python3.
            echo "python3 -m venv failed; installing python3-venv" >&2
            local sudo=""
            [ "$(id -u)" -eq 0 ] || sudo="sudo"
            $sudo apt-get update -qq && $sudo apt-get install -y -qq python3-venv
            rm -rf .venv
            python3 -m venv .venv
        fi
    fi
    local stamp=".venv/.installed${extras}"
    # Reinstall only when the project's dependencies changed.
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e ".${extras}"
        touch "$stamp"
    fi
}
