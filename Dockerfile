# The atdirectory image: `atdirectory serve` by default, any other command as arguments
# (docker run IMAGE migrate). Build and run: docs/deploy.md.
ARG NODE_IMAGE=node:20-bookworm-slim

# Compile TypeScript with every dependency.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: only the embedded PostgreSQL binaries and esbuild have any, and neither is
# needed to compile.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && chmod +x dist/cli.js

# Production dependencies only. Optional ones are left out: they are the embedded PostgreSQL
# (about 60 MB per platform), and the image always runs against DATABASE_URL.
FROM ${NODE_IMAGE} AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
# Lookups on 6464, since 64 needs privilege (the Service maps 64 to it). The data directory is
# written only without DATABASE_URL or a certificate: mount a volume there for a read-only root.
ENV ATDIR_LOOKUP_PORT=6464 ATDIR_DATA_DIR=/var/lib/atdirectory
WORKDIR /app
# Owned by root and read-only to the server: it can change nothing of its own code.
COPY --from=dependencies /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY migrations ./migrations
RUN ln -s /app/dist/cli.js /usr/local/bin/atdirectory \
    && mkdir -p /var/lib/atdirectory && chown 1000:1000 /var/lib/atdirectory
# The image's `node` user, by number so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
# Lookups, admin API, ops; 8443 for HTTPS lookups when ATDIR_HTTPS_PORT=8443.
EXPOSE 6464 8064 9464 8443
# Kubernetes ignores this and uses the chart's probes; plain Docker uses it. The image has no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.ATDIR_OPS_PORT || 9464) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Node is PID 1 and needs no init: serve handles SIGTERM and SIGINT itself (drain, then exit) and
# reaps the workers it forks.
ENTRYPOINT ["atdirectory"]
CMD ["serve"]
