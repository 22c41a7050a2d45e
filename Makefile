# kastor — make targets. `make help` lists them.
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
BIN         ?= bin
PKGS        ?= ./...
# Nested modules with their own go.mod, which ./... does not reach: tested and linted
# each in its own directory (bench/ is a program, run by `make bench`).
MODULES     ?= otel
TEST_FLAGS  ?= -race -count=1 -timeout 20m
# Fault phase of each chaos test; `make test` runs them with the package default (60s).
CHAOS_DURATION ?= 5m

.PHONY: help build test test-unit lint bench chaos dev demo image clean-containers clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

build: ## build the kastor CLI into bin/kastor
	$(GO) build -o $(BIN)/kastor ./cmd/tool

test: ## all tests, nested modules' too; prepares Docker and the Kafka and PostgreSQL images when missing (see docker/with-kafka.sh)
	docker/with-kafka.sh $(GO) test $(TEST_FLAGS) $(PKGS)
	for m in $(MODULES); do (cd $$m && $(GO) test $(TEST_FLAGS) ./...) || exit 1; done

test-unit: ## tests that need no Docker (integration tests skip)
	KASTOR_REQUIRE_DOCKER= CI= DOCKER_HOST=unix:///nonexistent $(GO) test -short $(TEST_FLAGS) $(PKGS)
	for m in $(MODULES); do (cd $$m && KASTOR_REQUIRE_DOCKER= CI= DOCKER_HOST=unix:///nonexistent $(GO) test -short $(TEST_FLAGS) ./...) || exit 1; done

lint: ## gofmt, go vet, staticcheck, nested modules included
	@out=$$(gofmt -l .); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)
	for m in $(MODULES); do (cd $$m && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...) || exit 1; done

bench: ## benchmarks, each printed beside its limit or peer from the same run (docs/BENCHMARKS.md)
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./producer
	cd bench && ../docker/with-kafka.sh $(GO) run . $(BENCH_FLAGS)

chaos: ## fault suite (issue 14): bank gateways killed, paused and brokers killed under load, then the log checked; CHAOS_DURATION=5m per test
	CHAOS_DURATION=$(CHAOS_DURATION) docker/with-kafka.sh $(GO) test -count=1 -v -run . -timeout 30m ./chaos/...

dev: ## embedded broker on 127.0.0.1:9092 with the example topics (Ctrl-C stops it)
	$(GO) run ./cmd/tool dev -f examples/kastor.yaml

demo: ## the bank example, then a money transfer saga, on the embedded broker
	$(GO) run ./examples/bank demo
	$(GO) run ./examples/transfer

image: ## build (or reuse) the offline Apache Kafka and PostgreSQL images
	docker/build-kafka-image.sh
	docker/build-postgres-image.sh

clean-containers: ## remove containers and networks left by killed test runs
	-docker rm -f -v $$(docker ps -aq --filter label=dev.kastor.kafkatest) 2>/dev/null
	-docker network rm $$(docker network ls -q --filter label=dev.kastor.kafkatest) 2>/dev/null

clean: ## remove build output
	rm -rf $(BIN)
