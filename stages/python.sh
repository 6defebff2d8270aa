#!/bin/sh
# sh stages/python.sh ARGS...: `python ARGS` with the interpreter of the dvc that runs the stage.
#
# DVC runs a stage's command through a shell, with its own environment plus DVC_ROOT and DVC_STAGE, and passes on
# nothing about the Python it runs under: a bare `python` is whatever PATH finds first, so `.venv/bin/dvc repro`
# with the virtualenv not on PATH ran every stage under another Python. requirements.txt installs dvc with the
# rest of the stack, so dvc's own interpreter is the project's, be it a virtualenv, conda or a container's. It
# is the nearest ancestor process that is not a shell (dash does not exec its command), read from /proc. Where
# there is no /proc, no such ancestor (the command typed by hand) or it lacks the stack (a dvc installed on its
# own: pipx, a binary), `python3` from PATH runs, as a bare `python` did.
set -eu

has_stack() {  # $1 is a Python that can import the stack (looked up, not imported: a few milliseconds)
    "$1" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("sklearn") is None)' 2>/dev/null
}

python=""
pid=$PPID
while [ "${pid:-0}" -gt 1 ] && [ -r "/proc/$pid/cmdline" ]; do
    argv0=$(tr '\0' '\n' < "/proc/$pid/cmdline" | head -n 1)
    case "${argv0##*/}" in
        sh | dash | bash | zsh | ksh | mksh | fish | busybox)  # its parent: the 2nd field after "(comm) "
            pid=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f2) ;;
        python*) has_stack "$argv0" && python=$argv0; break ;;
        *) break ;;
    esac
done
if [ -z "$python" ]; then
    python=$(command -v python3 || command -v python || echo python3)
    has_stack "$python" || echo "stages/python.sh: no Python with the project's requirements (requirements.txt):" \
        "not the one dvc runs under, not $python from PATH" >&2
fi
exec "$python" "$@"
