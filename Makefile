# Titan's entry points. Each target runs scripts/titan.sh, which says what it does as it goes.
.PHONY: up down status test images bench export-k8s

up:      ## set up what is missing and start Titan at http://127.0.0.1:8000
	@bash scripts/titan.sh up
down:    ## stop Titan (hub, proxy and the servers it started)
	@bash scripts/titan.sh down
status:  ## is Titan running?
	@bash scripts/titan.sh status
test:    ## set up what is missing, then lint, type-check and run every test
	@bash scripts/titan.sh test
images:  ## build the single-user images that are missing
	@bash scripts/titan.sh images
bench:   ## spawn latency and memory against plain DockerSpawner
	@bash scripts/titan.sh bench
export-k8s:  ## values for the Zero to JupyterHub and Dask Gateway charts in k8s-export/ (OUT=, ARGS=)
	@bash scripts/titan.sh export-k8s --out "$(or $(OUT),k8s-export)" $(ARGS)
