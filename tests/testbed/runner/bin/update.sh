#!/bin/bash
# Stand-in for actions/runner's self-update (test infrastructure only): what the listener does
# once a newer version is out (src/Runner.Listener/SelfUpdater.cs) followed by the script it
# generates from src/Misc/layoutbin/update.sh.template. Run as the runner user from the runner
# root, with the listener stopped or about to stop (the real one exits 3 and RunnerService
# relaunches whatever bin/ then holds):
#
#   bin/update.sh VERSION TARBALL
#
# 1. SelfUpdater.DownloadLatestRunner: empty <work>/_update and unpack the release into it
#    (kept there afterwards: nothing removes it).
# 2. SelfUpdater.CopyLatestRunnerToRoot: copy _work/_update/bin and externals to
#    bin.VERSION and externals.VERSION at the root.
# 3. update.sh.template, logging to _diag/SelfUpdate-<utc>.log: a bin/externals that is a
#    link is removed, a real folder is moved to <name>.<current version>; then bin and
#    externals become links to the root's bin.VERSION/externals.VERSION (absolute, as the
#    template's "$rootfolder/bin.$downloadrunnerversion"). A step that fails renames the log
#    to .failed and exits 1.
#
# RUNNER_STANDIN_UPDATE_FAIL (comma-separated) breaks it the ways the field reports
# (actions/runner#1981, #788, #2397):
#   bin-copy            step 2 loses bin.VERSION (a full disk, an interrupted copy): the bin
#                       link is made all the same and points at nothing
#   externals-junction  the externals link can't be made: the log becomes .failed
set -u

version=$1
tarball=$2
fail=",${RUNNER_STANDIN_UPDATE_FAIL:-},"
root=$PWD
work=$root/_work
# the listener knows its own version (the template's _EXIST_RUNNER_VERSION_); running it
# here would write a _diag log of its own, as every real Runner.Listener run does
current=$(sed -n 's/^VERSION = "\(.*\)"$/\1/p' bin/Runner.Listener 2>/dev/null)

rm -rf "$work/_update" && mkdir -p "$work/_update" || exit 1
tar -xzf "$tarball" -C "$work/_update" || exit 1
for kind in bin externals; do
    if [[ $kind == bin && $fail == *,bin-copy,* ]]; then
        continue
    fi
    rm -rf "$root/$kind.$version"
    cp -a "$work/_update/$kind" "$root/$kind.$version" || exit 1
done

mkdir -p "$root/_diag"
log="$root/_diag/SelfUpdate-$(date -u +%Y%m%d-%H%M%S).log"
failed() {
    date "+[%F %T] $1" >>"$log"
    mv -f "$log" "$log.failed"
    exit 1
}
date "+[%F %T] updating $current to $version" >>"$log"
for kind in bin externals; do
    if [[ -L $root/$kind && -d $root/$kind ]]; then
        rm "$root/$kind" || failed "Can't delete existing junction $kind folder"
    elif [[ -e $root/$kind ]]; then
        mv -f "$root/$kind" "$root/$kind.$current" >>"$log" 2>&1 ||
            failed "Can't move $root/$kind to $root/$kind.$current"
    fi
done
for kind in bin externals; do
    if [[ $kind == externals && $fail == *,externals-junction,* ]]; then
        failed "Can't create junction externals folder"
    fi
    ln -s "$root/$kind.$version" "$root/$kind" || failed "Can't create junction $kind folder"
done
date "+[%F %T] update complete" >>"$log"
