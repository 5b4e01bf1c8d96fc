# docker build -t cablecat . && docker run -p 8080:8080 -p 8090:8090 -e ANYCABLE_SECRET=… cablecat [--flags]
#
# Node 24 (LTS) on Debian 13 "trixie": glibc 2.41, as the @btc-vision/uwebsockets.js binary for Node 22/24 needs
# glibc >= 2.38 (Debian 12 "bookworm" images have 2.36 and would not load it).
ARG NODE_IMAGE=node:24-trixie-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
COPY bin ./bin
COPY proto ./proto
# `npm ci` builds dist/ once (the prepare script runs tsc); prune then drops TypeScript and the dev tools.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE}
# PORT (Heroku-style platforms) works as the port: only ANYCABLE_PORT would override it, so it is not set here.
ENV NODE_ENV=production ANYCABLE_HOST=0.0.0.0
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/bin ./bin
COPY --from=build /app/proto ./proto
USER node
# 8080: WebSockets (and the HTTP API); 8090: the HTTP API for clients uWS cannot parse (the anycable gem).
EXPOSE 8080 8090
# Follows the server's own --port/PORT, --health_path and TLS (read from its command line and env).
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 CMD ["node", "bin/cablecat.js", "healthcheck"]
ENTRYPOINT ["node", "bin/cablecat.js"]
