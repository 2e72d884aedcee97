# One image for the four services: `aiguillage run <service>` picks one.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN useradd --create-home --uid 10001 aiguillage

COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY aiguillage ./aiguillage
RUN pip install .

USER aiguillage
# The mount point of broker-init's volume (docker-compose.yml): a new volume takes its
# owner from it, so broker-init, not root, may write the definitions there.
RUN mkdir /home/aiguillage/broker
ENV AIGUILLAGE_DATA_DIR=/home/aiguillage/data
ENTRYPOINT ["aiguillage"]
