// What the headless-browser checks share: starting Chromium, and their exit codes.
import { chromium } from 'playwright-core';

/** Chromium (env CHROMIUM, default /usr/bin/chromium), headless; null when it cannot start. */
export async function launchChromium() {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  try {
    return await chromium.launch({
      executablePath,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  } catch (e) {
    console.error(`cannot start Chromium at ${executablePath} (set CHROMIUM to its path): ${e.message}`);
    return null;
  }
}

/** Runs `main` (which returns the exit code) and exits with it; an exception exits 1. */
export function exitWith(main) {
  main().then((code) => process.exit(code), (e) => {
    console.error(`FAILED (unexpected error): ${e && e.stack || e}`);
    process.exit(1);
  });
}
