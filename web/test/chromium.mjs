// The browser of the browser tests and the screenshot script: Debian's Chromium (make install
// installs it), driven by Playwright; never a downloaded one.
import { existsSync } from "node:fs";

import { chromium } from "playwright-core";

export async function launchChromium() {
  const executablePath = process.env.MOBILITY_CHROMIUM ?? "/usr/bin/chromium";
  if (!existsSync(executablePath)) {
    throw new Error(`no Chromium at ${executablePath}: make install installs Debian's chromium package`);
  }
  return chromium.launch({
    executablePath,
    args: [
      // As root in a container, and with nothing of Google's to call home to.
      "--no-sandbox",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-quic",
      // WebGL (the web app's map) without a GPU: Chromium's software renderer.
      "--use-angle=swiftshader",
      "--enable-unsafe-swiftshader",
    ],
  });
}
