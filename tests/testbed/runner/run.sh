#!/bin/bash
# Stand-in for actions/runner's run.sh + run-helper.sh.template (test infrastructure only):
# run the listener in the foreground; relaunch it after a retryable exit (2, after 5 s) and
# after an update (3/4: first wait up to 30 s for update.finished), exit 7 on 7 only with
# ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE=1, stop on anything else with the real
# lines (run-helper.sh.template:38-81, run.sh:13-29). RUNNER_STANDIN_TIME_SCALE from the
# environment scales its waits like the listener's windows.

if [ "$(id -u)" -eq 0 ] && [ -z "$RUNNER_ALLOW_RUNASROOT" ]; then
    echo "Must not run interactively with sudo"
    exit 1
fi

SOURCE="${BASH_SOURCE[0]}"
while [ -h "$SOURCE" ]; do
    DIR="$(cd -P "$(dirname "$SOURCE")" && pwd)"
    SOURCE="$(readlink "$SOURCE")"
    [[ $SOURCE != /* ]] && SOURCE="$DIR/$SOURCE"
done
DIR="$(cd -P "$(dirname "$SOURCE")" && pwd)"
scale="${RUNNER_STANDIN_TIME_SCALE:-1}"
[[ $scale =~ ^[0-9]*\.?[0-9]+$ ]] || scale=1
seconds() { awk -v s="$1" -v k="$scale" 'BEGIN { printf "%.3f", s * k }'; }

PID=""
trap '[ -n "$PID" ] && kill -INT "$PID" 2>/dev/null' INT TERM

while :; do
    "$DIR"/bin/Runner.Listener run "$@" &
    PID=$!
    wait "$PID"
    returnCode=$?
    # a trapped signal interrupts wait: wait again for the listener's own exit code
    while kill -0 "$PID" 2>/dev/null; do
        wait "$PID"
        returnCode=$?
    done
    case $returnCode in
        0) echo "Runner listener exit with 0 return code, stop the service, no retry needed." ;;
        1) echo "Runner listener exit with terminated error, stop the service, no retry needed." ;;
        2)
            echo "Runner listener exit with retryable error, re-launch runner in 5 seconds."
            sleep "$(seconds 5)"
            echo "Restarting runner..."
            continue
            ;;
        3 | 4)
            echo "Runner listener exit because of updating, re-launch runner after successful update"
            for _ in {0..30}; do
                if [ -f update.finished ]; then
                    echo "Update finished successfully."
                    rm update.finished
                    break
                fi
                sleep "$(seconds 1)"
            done
            echo "Restarting runner..."
            continue
            ;;
        5) echo "Runner listener exit with Session Conflict error, stop the service, no retry needed." ;;
        *)
            if [ "$ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE" = 1 ] && [ "$returnCode" -eq 7 ]; then
                echo "Runner listener exit with deprecated version exit code: ${returnCode}."
                echo "Exiting runner..."
                exit 7
            fi
            echo "Exiting with unknown error code: ${returnCode}"
            ;;
    esac
    echo "Exiting runner..."
    exit 0
done
