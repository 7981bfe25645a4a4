#!/bin/bash
# Stand-in for actions/runner's bin/runsvc.sh + bin/RunnerService.js (test infrastructure only;
# the real one runs node). `svc.sh install` copies it to the runner root; the systemd unit
# runs it. As in runsvc.sh: PATH from .path; SIGTERM/SIGINT become a graceful shutdown. As in
# RunnerService.js (lines cited):
# - start "Runner.Listener run --startuptype service"; its stdout and stderr both go to our
#   stdout, the journal (:64-74);
# - shutdown: SIGINT to the listener, SIGKILL 30 s later if it is still there (:30-40);
# - exit 0, 1, 5: stop for good (:83-92,117-121); 2, 3, 4: relaunch after 5 s, stop after 10
#   in a row (:93-116); anything else: relaunch after 5 s forever, unless
#   GITHUB_ACTIONS_SERVICE_EXIT_AFTER_N_FAILURES (:19-25,122-137);
# - both counters reset when the listener prints "Listening for Jobs" (:64-68).
# RUNNER_STANDIN_TIME_SCALE from the environment (the real runsvc.sh reads no .env) scales
# the 5 s and 30 s like the listener's windows.

if [ -f ".path" ]; then
    PATH="$(cat .path)"
    export PATH
    echo ".path=${PATH}"
fi

scale="${RUNNER_STANDIN_TIME_SCALE:-1}"
[[ $scale =~ ^[0-9]*\.?[0-9]+$ ]] || scale=1
seconds() { awk -v s="$1" -v k="$scale" 'BEGIN { printf "%.3f", s * k }'; }
# shellcheck disable=SC2317  # used by the trap
tenths() { awk -v s="$1" -v k="$scale" 'BEGIN { printf "%d", s * k * 10 }'; }

exit_after="${GITHUB_ACTIONS_SERVICE_EXIT_AFTER_N_FAILURES:-}"
[[ $exit_after =~ ^[1-9][0-9]*$ ]] || exit_after=""

stopping=0
PID=""
unknown_failures=0
retriable_failures=0
listening="$(mktemp)" || exit 1 # flags: "Listening for Jobs" seen, output all relayed
rm -f "$listening"
trap 'rm -f "$listening" "$listening.eof"' EXIT

# shellcheck disable=SC2317  # invoked by the trap
shutdown() {
    echo "Shutting down runner listener"
    stopping=1
    if [ -n "$PID" ]; then
        echo "Sending SIGINT to runner listener to stop"
        kill -INT "$PID" 2>/dev/null
        echo "Sending SIGKILL to runner listener"
        (
            for ((i = $(tenths 30); i > 0; i--)); do
                kill -0 "$PID" 2>/dev/null || exit 0
                sleep 0.1
            done
            kill -KILL "$PID" 2>/dev/null
        ) &
    fi
}
trap shutdown TERM INT

# The listener's output, passed on line by line; seeing "Listening for Jobs" marks a reset.
relay() {
    local line
    while IFS= read -r line || [ -n "$line" ]; do
        printf '%s\n' "$line"
        [[ $line == *"Listening for Jobs"* ]] && : >"$listening"
    done
    : >"$listening.eof"
}

run_listener() {
    echo "Starting Runner listener with startup type: service"
    ./bin/Runner.Listener run --startuptype service > >(relay) 2>&1 &
    PID=$!
    echo "Started listener process, pid: ${PID}"
}

run_listener
echo "Started running service"
while :; do
    wait "$PID" 2>/dev/null # (no "Killed" job notice: node prints none)
    code=$?
    while kill -0 "$PID" 2>/dev/null; do # a trapped signal interrupted wait
        wait "$PID" 2>/dev/null
        code=$?
    done
    PID=""
    for _ in {1..20}; do # its last lines first, as node's "data" events come before "close"
        [ -e "$listening.eof" ] && break
        sleep 0.1
    done
    rm -f "$listening.eof"
    if [ -e "$listening" ]; then
        rm -f "$listening"
        unknown_failures=0
        retriable_failures=0
    fi
    if [ "$code" -eq 127 ] && [ ! -x ./bin/Runner.Listener ]; then
        echo "Runner listener fail to start with error spawn $PWD/bin/Runner.Listener ENOENT"
    fi
    echo "Runner listener exited with error code ${code}"
    case $code in
        0)
            echo "Runner listener exit with 0 return code, stop the service, no retry needed."
            stopping=1
            ;;
        1)
            echo "Runner listener exit with terminated error, stop the service, no retry needed."
            stopping=1
            ;;
        2 | 3 | 4)
            if [ "$code" -eq 2 ]; then
                echo "Runner listener exit with retryable error, re-launch runner in 5 seconds."
            else
                echo "Runner listener exit because of updating, re-launch runner in 5 seconds."
            fi
            unknown_failures=0
            retriable_failures=$((retriable_failures + 1))
            if [ "$retriable_failures" -ge 10 ]; then
                echo "Stopping the runner after 10 consecutive re-tryable failures" >&2
                stopping=1
            fi
            ;;
        5)
            echo "Runner listener exit with Session Conflict error, stop the service, no retry needed."
            stopping=1
            ;;
        *)
            prefix="Runner listener exit with undefined return code"
            unknown_failures=$((unknown_failures + 1))
            retriable_failures=0
            if [ -n "$exit_after" ] && [ "$unknown_failures" -ge "$exit_after" ]; then
                echo "${prefix}, exiting service after ${unknown_failures} consecutive failures" >&2
                stopping=1
            else
                echo "${prefix}, re-launch runner in 5 seconds."
            fi
            ;;
    esac
    [ "$stopping" -eq 0 ] || break
    sleep "$(seconds 5)" &
    wait $!
    [ "$stopping" -eq 0 ] || break
    run_listener
done
exit 0
