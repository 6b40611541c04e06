/**
 * Builds the console into web/dist (ignored by git: it is reproducible from
 * source). The control plane serves it under /console/ (see
 * src/controlplane/api/console-routes.ts), so asset URLs are based there.
 */
import path from 'node:path';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  root: import.meta.dirname,
  base: '/console/',
  plugins: [react()],
  build: {
    outDir: path.join(import.meta.dirname, 'dist'),
    emptyOutDir: true,
    // Hashed file names let the server mark assets immutable.
    assetsDir: 'assets',
    sourcemap: false,
    chunkSizeWarningLimit: 800,
  },
  logLevel: 'warn',
});
