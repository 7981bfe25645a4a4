#!/bin/bash
# Stand-in for actions/runner's src/Misc/layoutroot/env.sh (test infrastructure only), sourced
# by config.sh from the runner root, so it snapshots the environment of whoever configures:
# - .path is rewritten every time with that user's PATH (runsvc.sh makes it the service's PATH);
# - .env gets each variable of the real list that is set here and not yet in .env, appended
#   (existing lines kept). As in env.sh, "not yet in .env" means no "NAME=" anywhere in the file
#   (a substring test, not one per line), and .path is written by an unquoted echo.

varCheckList=(LANG JAVA_HOME ANT_HOME M2_HOME ANDROID_HOME ANDROID_SDK_ROOT GRADLE_HOME NVM_BIN
    NVM_PATH LD_LIBRARY_PATH PERL5LIB)

envContents=""
if [ -f ".env" ]; then
    envContents=$(cat .env)
else
    touch .env
fi

writeVar() {
    local checkVar="$1"
    local checkDelim="${1}="
    if [ "${envContents#*"$checkDelim"}" = "$envContents" ] && [ -n "${!checkVar}" ]; then
        echo "${checkVar}=${!checkVar}" >>.env
    fi
}

# shellcheck disable=SC2086  # unquoted like env.sh's `echo $PATH>.path`
echo $PATH >.path

for var_name in "${varCheckList[@]}"; do
    writeVar "$var_name"
done
