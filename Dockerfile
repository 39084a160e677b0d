# lakegate's image: jobs (`validate`, `run`, `train`, `predict`, ...), `serve` and `serve-sql`.
# Java 17 (Spark 3.5) on a Python 3.11 base; every lakegate step is scripts/install.sh, the same
# script tests/test_install_script.py runs into a fresh folder (see docs/deploy.md).
#
#   docker build -t lakegate .
#   docker run --rm -v "$PWD:/work" lakegate validate /opt/lakegate/checks/examples/items.yaml \
#       --input /opt/lakegate/data/items.csv --output /work/out/items
#   docker run --rm -p 127.0.0.1:8080:8080 -e LAKEGATE_SERVE_TOKEN=... lakegate serve --env docker
FROM python:3.11-slim-bookworm

ARG LAKEGATE_EXTRAS=lineage,postgres
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 lakegate \
    && mkdir -p /opt/lakegate /var/lib/lakegate /work \
    && chown lakegate:lakegate /opt/lakegate /var/lib/lakegate /work

USER lakegate
COPY --chown=lakegate:lakegate . /tmp/lakegate-src
# The jars land in ~/.cache/lakegate/ivy and the class-data archive in ~/.cache/lakegate/jvm
# (both in the image); the uv cache and the sources do not stay.
RUN bash /tmp/lakegate-src/scripts/install.sh --prefix /opt/lakegate --python python3.11 \
        --extras "$LAKEGATE_EXTRAS" \
    && mkdir -p /opt/lakegate/out \
    && rm -rf /tmp/lakegate-src /home/lakegate/.cache/uv

ENV PATH=/opt/lakegate/bin:/opt/lakegate/venv/bin:$PATH \
    LAKEGATE_CONF_DIR=/opt/lakegate/conf \
    LAKEGATE_STATE_DIR=/var/lib/lakegate \
    SPARK_LOCAL_IP=127.0.0.1
VOLUME ["/var/lib/lakegate"]
WORKDIR /work
# serve (8080) and serve-sql (10000); both bind loopback unless conf configures authentication.
EXPOSE 8080 10000
ENTRYPOINT ["/opt/lakegate/bin/lakegate"]
CMD ["--help"]
