// Builds the playground into a static bundle with relative URLs, so
// assistd can serve it at /playground/ (or any prefix). The Makefile passes
// --outDir (the build directory) and gzips the output for precompressed
// serving.
import { defineConfig } from 'vite';

export default defineConfig({
  base: './',
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: false,
  },
});
