#!/bin/bash
# Stand-in for actions/runner's bin/runsvc.sh + bin/RunnerService.js (test infrastructure only;
# the real one runs node). `svc.sh install` copies it to the runner root; the systemd unit
# runs it. Like RunnerService.js: start "Runner.Listener run --startuptype service", relaunch
# it 5 s (RUNNER_STANDIN_RELAUNCH_DELAY) after exit codes 2/3/4 (giving up after 10 in a
# row), stop for good on 0, 1 and 5; SIGTERM/SIGINT are passed on to the listener as SIGINT.

if [ -f ".path" ]; then
    PATH="$(cat .path)"
    export PATH
    echo ".path=${PATH}"
fi

delay="${RUNNER_STANDIN_RELAUNCH_DELAY:-5}"
stopping=0
PID=""
retries=0

# shellcheck disable=SC2317  # invoked by the trap
shutdown() {
    echo "Shutting down runner listener"
    stopping=1
    if [ -n "$PID" ]; then
        echo "Sending SIGINT to runner listener to stop"
        kill -INT "$PID" 2>/dev/null
    fi
}
trap shutdown TERM INT

echo "Started running service"
while [ "$stopping" -eq 0 ]; do
    echo "Starting Runner listener with startup type: service"
    ./bin/Runner.Listener run --startuptype service &
    PID=$!
    echo "Started listener process, pid: ${PID}"
    wait "$PID"
    code=$?
    while kill -0 "$PID" 2>/dev/null; do
        wait "$PID"
        code=$?
    done
    PID=""
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
            retries=$((retries + 1))
            if [ "$retries" -ge 10 ]; then
                echo "Stopping the runner after 10 consecutive re-tryable failures" >&2
                stopping=1
            fi
            ;;
        5)
            echo "Runner listener exit with Session Conflict error, stop the service, no retry needed."
            stopping=1
            ;;
        *) echo "Runner listener exit with undefined return code, re-launch runner in 5 seconds." ;;
    esac
    if [ "$stopping" -eq 0 ]; then
        sleep "$delay" &
        wait $!
    fi
done
exit 0
