# optimlab: one image for every app service (migrate, api, worker); the command picks the role.
#
#   CPU image (default):  docker build -t optimlab:cpu .
#   GPU image:            docker build -t optimlab:gpu \
#                             --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 .
#
# docker-compose.yml builds both; see the comment at its top.
FROM python:3.11-slim

# Where torch comes from. The CPU wheels keep the image small (no CUDA libraries);
# a CUDA index gives wheels that bundle their CUDA runtime, so the slim base still works
# on a host with the NVIDIA container toolkit.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src

# torch first, from TORCH_INDEX only, in its own layer: it is by far the largest
# dependency and changes least. `pip install .` then finds torch>=2.4 satisfied and
# leaves it alone instead of pulling the default (CUDA) build from PyPI.
RUN pip install --index-url "${TORCH_INDEX}" "torch>=2.4"

# Only what `pip install .` reads (see .dockerignore).
COPY pyproject.toml README.md ./
COPY service ./service
COPY worker ./worker
COPY migrations ./migrations
COPY client ./client
RUN pip install . \
    && rm -rf /src \
    && useradd --create-home --uid 10001 --user-group optimlab

# Non-root; the home directory is the only writable place the app may use.
USER optimlab
WORKDIR /home/optimlab

EXPOSE 8000
ENTRYPOINT ["optimlab"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
