#!/bin/bash
# Stand-in for actions/runner's env.sh (test infrastructure only), sourced by config.sh from the
# runner root: snapshot PATH into .path and a few well-known variables into .env (only those
# not already there), as src/Misc/layoutroot/env.sh does.

env_vars=(LANG JAVA_HOME ANT_HOME M2_HOME ANDROID_HOME ANDROID_SDK_ROOT GRADLE_HOME NVM_BIN
    NVM_PATH LD_LIBRARY_PATH PERL5LIB)

touch .env
echo "$PATH" >.path
for var_name in "${env_vars[@]}"; do
    if ! grep -q "^${var_name}=" .env && [ -n "${!var_name}" ]; then
        echo "${var_name}=${!var_name}" >>.env
    fi
done
