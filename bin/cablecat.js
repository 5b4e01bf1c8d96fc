#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (built by `npm run build` / `npm install`).
import '../dist/src/cli/main.js';
