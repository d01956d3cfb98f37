# Shortcuts; the README's two commands are `docker compose up -d --build --wait` and `make test`.
.PHONY: up down logs ps test test-unit bench lint

up:        ## start the stack (builds the model image)
	docker compose up -d --build --wait

down:      ## stop the stack (keeps Prometheus/Grafana data; `docker compose down -v` drops it)
	docker compose down

logs:      ## follow every service's logs
	docker compose logs -f --tail=100

ps:
	docker compose ps

test:      ## everything CI runs: lint, unit, config checks, end-to-end against the real stack
	tests/run

test-unit: ## the fast in-process tests only
	tests/run -m "not docker and not e2e and not swarm"

bench:     ## the side-by-side benchmark (see bench/README.md)
	bench/run

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
