// "Teach lucy" end to end: real photos from ../shared/data/catsdogs through the page's file
// inputs, training in the model's worker, held-out photos, a reload, the downloads checked
// natively with `lucy eval` and `lucy train PROJECT`, a camera burst, storage running out.
//
//   node --test --test-concurrency=1 tests/browser/teach.test.mjs

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";
import { assertClean, dist, headFile, launch, openPage, output, root, serveSite, shared, temporaryDir, upload } from "./harness.mjs";

serveSite();

const catsdogs = path.resolve(shared, "../../data/catsdogs");
const noPhotos = fs.existsSync(catsdogs) ? false : `needs the photos in ${catsdogs} (LUCY_SHARED)`;
const lucy = path.join(process.env.CARGO_TARGET_DIR ?? path.join(os.homedir(), ".cache/lucy-target"), "release/lucy");

/// The first `n` photos (sorted by name) of a split and class.
function photos(split, kind, n) {
  const dir = path.join(catsdogs, split, kind);
  return fs.readdirSync(dir).sort().slice(0, n).map((f) => path.join(dir, f));
}

async function teachReady(page) {
  await page.waitForFunction(() => document.querySelector("#teach")?.dataset.restored === "true", null, { timeout: 60_000 });
}

/// Wait until the project holds `total` photos and nothing is still being added.
async function settled(page, total, timeout = 300_000) {
  await page.waitForFunction(
    (total) => document.querySelector("#teach-count").textContent === `${total} photos in 2 classes`,
    total,
    { timeout },
  );
}

const classCount = (page, name) => page.locator(`.class[aria-label="Class ${name}"] .count`).textContent();

/// Click a download button and return the file's bytes.
async function download(page, button) {
  const [file] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: button }).click()]);
  return fs.readFileSync(await file.path());
}

test("teach Lucy (dogs) and Other (cats) from files, train, classify held-out photos, reload, agree natively", { skip: noPhotos, timeout: 900_000 }, async () => {
  const dir = temporaryDir("lucy-teach-");
  const context = await launch({ userDataDir: path.join(dir, "profile") });
  try {
    const { page, errors } = await openPage(context, "?backend=cpu");
    await teachReady(page);
    const teach = page.getByRole("region", { name: "Teach lucy" });
    assert.equal(await teach.locator(".class-name").nth(0).inputValue(), "Lucy");
    assert.equal(await teach.locator(".class-name").nth(1).inputValue(), "Other");

    // 30 dogs (and a file that is not a photo) to Lucy, 30 cats to Other, all at once.
    const broken = path.join(dir, "not-a-photo.jpg");
    fs.writeFileSync(broken, "this is text, not a JPEG");
    const dogs = photos("train", "dog", 30);
    const cats = photos("train", "cat", 30);
    await page.getByLabel("Add photos to Lucy").setInputFiles([...dogs.slice(0, 15), broken, ...dogs.slice(15)]);
    await page.getByLabel("Add photos to Other").setInputFiles(cats);
    await settled(page, 60);
    assert.equal(await classCount(page, "Lucy"), "30 photos");
    assert.equal(await classCount(page, "Other"), "30 photos");
    assert.match(await page.textContent("#teach-log"), /not-a-photo\.jpg was not added: .+/);

    // Train: the status gives the validation accuracy, the new head is in use.
    await page.getByRole("button", { name: "Train", exact: true }).click();
    await page.waitForFunction(() => /validation accuracy \d\.\d\d \(/.test(document.querySelector("#teach-status").textContent), null, { timeout: 120_000 });
    const status = await page.textContent("#teach-status");
    const pageAccuracy = Number(status.match(/validation accuracy (\d\.\d\d)/)[1]);
    const seconds = Number(await page.getAttribute("#teach-status", "data-seconds"));
    console.log(`# ${status} (train call ${seconds} s)`);
    assert.ok(pageAccuracy >= 0.9, status);
    assert.equal(await page.inputValue("#head"), "page:taught");
    assert.equal(await page.locator("#teach-report svg.curve").count(), 1);
    assert.equal(await page.locator("#teach-report table.confusion td").count(), 4);
    const val = await page.locator('.thumb[data-split="val"]').count();
    assert.equal(val, 12, "a fifth of each class held out");
    await page.screenshot({ path: path.join(output, "teach-trained.png"), fullPage: true });

    // Held-out photos (the test split: never seen) through the classifier: ≥ 95 % right.
    const heldOut = [...photos("test", "dog", 12), ...photos("test", "cat", 12)];
    await page.setInputFiles("#files", heldOut);
    await page.waitForFunction(
      (n) => [...document.querySelectorAll(".result")].filter((c) => c.dataset.state === "done").length >= n,
      heldOut.length,
      { timeout: 300_000 },
    );
    const labels = await page.$$eval(".result", (cards) => cards.map((c) => [c.querySelector("h3").textContent, c.dataset.top1]));
    const right = labels.filter(([name, top1]) => top1 === (name.startsWith("dog") ? "Lucy" : "Other")).length;
    console.log(`# held-out photos right: ${right} of ${heldOut.length}`);
    assert.ok(right / heldOut.length >= 0.95, JSON.stringify(labels));

    // The downloads, natively: the project trains into the same bytes; lucy eval on the
    // validation photos agrees with the page's validation accuracy.
    const head = await download(page, "Download head");
    const project = await download(page, "Download project");
    const headPath = path.join(dir, "head-taught.safetensors");
    fs.writeFileSync(headPath, head);
    fs.writeFileSync(path.join(dir, "project.safetensors"), project);
    const native = path.join(dir, "native.safetensors");
    const env = { ...process.env, LUCY_WEIGHTS: path.join(root, "weights") };
    execFileSync(lucy, ["train", path.join(dir, "project.safetensors"), "--out", native], { env });
    assert.ok(fs.readFileSync(native).equals(head), "lucy train PROJECT gives the page's head, byte for byte");
    const valDir = path.join(dir, "val");
    const held = await page.$$eval('.thumb[data-split="val"]', (thumbs) =>
      thumbs.map((t) => [t.closest(".class").querySelector(".class-name").value, t.getAttribute("title")]));
    for (const [cls, name] of held) {
      fs.mkdirSync(path.join(valDir, cls), { recursive: true });
      const from = [...dogs, ...cats].find((p) => path.basename(p) === name);
      fs.copyFileSync(from, path.join(valDir, cls, name));
    }
    const report = JSON.parse(execFileSync(lucy, ["eval", valDir, "--head", headPath, "--precision", "int8", "--json"], { env }));
    console.log(`# lucy eval on the ${report.photos} validation photos: accuracy ${report.accuracy}; page: ${pageAccuracy}`);
    assert.equal(report.photos, 12);
    assert.equal(report.accuracy.toFixed(2), pageAccuracy.toFixed(2));

    // The downloaded head loads back into the page as a head file.
    await page.setInputFiles("#head-file", headPath);
    await page.waitForFunction(() => document.querySelector(".result")?.dataset.state === "done" && /Head in use: Lucy \/ Other/.test(document.querySelector(".result").textContent), null, { timeout: 60_000 });

    // A reload brings the project back, with its head in use.
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.ready === "true", null, { timeout: 120_000 });
    await teachReady(page);
    await settled(page, 60);
    assert.equal(await classCount(page, "Lucy"), "30 photos");
    assert.equal(await classCount(page, "Other"), "30 photos");
    await page.waitForFunction(() => document.querySelector("#head").value === "page:taught", null, { timeout: 60_000 });
    assert.equal(await page.locator('.thumb[data-split="val"]').count(), 12, "the last report is back");
    await assertClean(page, errors);
  } finally {
    await context.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// ---------- without ../shared: the project's own CC0 fixtures -------------------------------

const fixture = (name) => path.join(root, "tests/fixtures", name);

test("storage running out: a clear message, nothing half-kept, and what was kept comes back after a reload", { timeout: 300_000 }, async () => {
  const dir = temporaryDir("lucy-teach-");
  const context = await launch({ userDataDir: dir });
  try {
    // Fault injection in the real IndexedDB: once the page sets window.__full, storing a photo
    // fails as a full quota does.
    await context.addInitScript(() => {
      const put = IDBObjectStore.prototype.put;
      IDBObjectStore.prototype.put = function (...args) {
        if (window.__full && this.name === "photos") throw new DOMException("The quota has been exceeded.", "QuotaExceededError");
        return put.apply(this, args);
      };
    });
    const { page, errors } = await openPage(context, "?backend=cpu");
    await teachReady(page);
    await page.getByLabel("Add photos to Other").setInputFiles([fixture("skimage_chelsea_cat.png"), fixture("skimage_coffee.png")]);
    await settled(page, 2);
    await page.evaluate(() => { window.__full = true; });
    await page.getByLabel("Add photos to Lucy").setInputFiles([fixture("upright.jpg")]);
    await page.waitForFunction(() => document.querySelector("#teach-log").textContent.includes("Storage is full"), null, { timeout: 120_000 });
    assert.match(await page.textContent("#teach-log"), /Storage is full: upright\.jpg was not added\. The 2 photos kept so far are safe/);
    await settled(page, 2);
    assert.equal(await classCount(page, "Lucy"), "0 photos");
    // Training needs two photos in each class, and says so.
    await page.getByRole("button", { name: "Train", exact: true }).click();
    await page.waitForFunction(() => /^Not trained: add at least two photos to `Lucy`/.test(document.querySelector("#teach-status").textContent), null, { timeout: 60_000 });

    await page.reload();
    await page.waitForFunction(() => document.body.dataset.ready === "true", null, { timeout: 120_000 });
    await teachReady(page);
    await settled(page, 2);
    assert.equal(await classCount(page, "Other"), "2 photos");
    await assertClean(page, errors);
  } finally {
    await context.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("classes: rename, add, remove; move a photo; the same photo twice is added once; clear asks first", { timeout: 300_000 }, async () => {
  const context = await launch();
  try {
    const { page, errors } = await openPage(context, "?backend=cpu");
    await teachReady(page);
    await page.locator(".class-name").nth(0).fill("Lucy the Frenchie");
    await page.locator(".class-name").nth(0).press("Enter");
    await page.locator(".class-name").nth(0).blur();
    const lucyInput = page.getByLabel("Add photos to Lucy the Frenchie");
    await lucyInput.setInputFiles([fixture("skimage_chelsea_cat.png"), fixture("skimage_coffee.png")]);
    await settled(page, 2);
    // The same photo again (even into another class): named, not recomputed.
    await page.getByLabel("Add photos to Other").setInputFiles([fixture("skimage_coffee.png")]);
    await page.waitForFunction(() => document.querySelector("#teach-log").textContent.includes("is already in Lucy the Frenchie"), null, { timeout: 60_000 });
    await settled(page, 2);
    // Move the coffee photo to Other with its class selector.
    await page.getByLabel("Class of skimage_coffee.png").selectOption({ label: "Other" });
    assert.equal(await classCount(page, "Lucy the Frenchie"), "1 photo");
    assert.equal(await classCount(page, "Other"), "1 photo");
    // A third class; then removed again (it is empty: no question asked).
    await page.getByRole("button", { name: "Add a class" }).click();
    assert.equal(await page.locator(".class").count(), 3);
    assert.equal(await page.locator(".class-name").nth(2).inputValue(), "Class 3");
    await page.locator('.class[aria-label="Class Class 3"] .remove-class').click();
    assert.equal(await page.locator(".class").count(), 2);
    // Clear asks first: dismissed, nothing changes; accepted, a fresh Lucy / Other.
    page.once("dialog", (d) => d.dismiss());
    await page.getByRole("button", { name: "Clear…" }).click();
    assert.equal(await page.textContent("#teach-count"), "2 photos in 2 classes");
    page.once("dialog", (d) => d.accept());
    await page.getByRole("button", { name: "Clear…" }).click();
    await page.waitForFunction(() => document.querySelector("#teach-count").textContent === "0 photos in 2 classes");
    assert.equal(await page.locator(".class-name").nth(0).inputValue(), "Lucy");
    await assertClean(page, errors);
  } finally {
    await context.close();
  }
});

test("holding a class's capture button takes camera frames into it, a few a second, until released", { timeout: 300_000 }, async () => {
  const context = await launch({ camera: "pattern" });
  try {
    const { page, errors } = await openPage(context, "?backend=cpu");
    await teachReady(page);
    const capture = page.getByRole("button", { name: "Hold to capture photos for Lucy from the camera" });
    // Without the camera running, holding it says what to do.
    await capture.dispatchEvent("pointerdown");
    await page.waitForFunction(() => document.querySelector("#teach-log").textContent.includes("Start the camera first"));
    await capture.dispatchEvent("pointerup");
    await page.click("#camera-start");
    await page.waitForFunction(() => Number(document.querySelector("#live")?.dataset.frames ?? 0) >= 1, null, { timeout: 120_000 });
    await capture.dispatchEvent("pointerdown");
    await page.waitForTimeout(1500);
    await capture.dispatchEvent("pointerup");
    await page.waitForFunction(() => !/being added/.test(document.querySelector("#teach-count").textContent), null, { timeout: 120_000 });
    const taken = Number((await classCount(page, "Lucy")).split(" ")[0]);
    console.log(`# camera burst: ${taken} photos in 1.5 s`);
    assert.ok(taken >= 3 && taken <= 7, `${taken} photos from a 1.5 s burst at ~3 per second`);
    await page.waitForTimeout(1000);
    assert.equal(Number((await classCount(page, "Lucy")).split(" ")[0]), taken, "released: no more photos");
    await page.click("#camera-stop");
    await assertClean(page, errors);
  } finally {
    await context.close();
  }
});

test("host your own: the site's default head is the page's first; ?head=NAME picks another; an unknown name says so", { timeout: 300_000 }, async () => {
  // The site as `lucy add-head head.safetensors --name mine --default` + a rebuild serves it:
  // one more head in the manifest, named as its default.
  const head = headFile(2048, ["Lucy", "Other"], 0.01); // bias 0, 1: always "Other"
  const manifest = JSON.parse(fs.readFileSync(path.join(dist, "weights/manifest.json")));
  manifest.heads.push({ name: "mine", file: "head-mine.safetensors" });
  manifest.default_head = "mine";
  manifest.files["head-mine.safetensors"] = { size_bytes: head.length, sha256: crypto.createHash("sha256").update(head).digest("hex") };
  const coffee = fixture("skimage_coffee.png");
  for (const [query, top1, selected] of [["", "Other", "mine"], ["&head=imagenet", "espresso", "imagenet"], ["&head=nope", "espresso", "imagenet"]]) {
    const context = await launch();
    try {
      await context.route("**/weights/manifest.json", (route) => route.fulfill({ body: JSON.stringify(manifest), contentType: "application/json" }));
      await context.route("**/weights/head-mine.safetensors", (route) => route.fulfill({ body: head }));
      const { page, errors } = await openPage(context, `?backend=cpu${query}`);
      assert.equal(await (await upload(page, coffee)).getAttribute("data-top1"), top1, query);
      assert.equal(await page.inputValue("#head"), selected, query);
      if (query.includes("nope")) {
        assert.match(await page.textContent("#results"), /No head named “nope”.*This site has the heads imagenet, mine/);
      }
      await assertClean(page, errors);
    } finally {
      await context.close();
    }
  }
});

test("a new backbone on the site: kept photos get their features again from their kept crops, exactly", { timeout: 300_000 }, async () => {
  const dir = temporaryDir("lucy-teach-");
  let context = await launch({ userDataDir: dir });
  try {
    let { page } = await openPage(context, "?backend=cpu");
    await teachReady(page);
    await page.getByLabel("Add photos to Lucy").setInputFiles([fixture("skimage_coffee.png"), fixture("upright.jpg")]);
    await page.getByLabel("Add photos to Other").setInputFiles([fixture("skimage_chelsea_cat.png"), fixture("exif-orientation-6.jpg")]);
    await settled(page, 4);
    await page.getByRole("button", { name: "Train", exact: true }).click();
    await page.waitForFunction(() => /validation accuracy \d\.\d\d \(/.test(document.querySelector("#teach-status").textContent), null, { timeout: 120_000 });
    const before = await download(page, "Download head");
    await context.close();

    // The site now serves another int8 backbone file: the same weights, one byte of its
    // header's padding changed (a space for a tab), so a new sha256 in the manifest. Features
    // recomputed from the kept crops must then equal the first ones, and so must the head.
    const weights = path.join(dist, "weights");
    const manifest = JSON.parse(fs.readFileSync(path.join(weights, "manifest.json")));
    const file = manifest.backbones.int8;
    const backbone = Buffer.from(fs.readFileSync(path.join(weights, file)));
    const headerEnd = 8 + Number(backbone.readBigUInt64LE(0));
    assert.equal(backbone[headerEnd - 1], 0x20, "the header ends in padding");
    backbone[headerEnd - 1] = 0x09;
    manifest.files[file] = { size_bytes: backbone.length, sha256: crypto.createHash("sha256").update(backbone).digest("hex") };
    context = await launch({ userDataDir: dir });
    await context.route("**/weights/manifest.json", (route) => route.fulfill({ body: JSON.stringify(manifest), contentType: "application/json" }));
    await context.route(`**/weights/${file}`, (route) => route.fulfill({ body: backbone }));
    let errors;
    ({ page, errors } = await openPage(context, "?backend=cpu"));
    await teachReady(page);
    await page.waitForFunction(() => document.querySelector("#teach-log").textContent.includes("The backbone changed since 4 photos were added"), null, { timeout: 60_000 });
    await settled(page, 4);
    await page.getByRole("button", { name: "Train", exact: true }).click();
    await page.waitForFunction(() => /validation accuracy \d\.\d\d \(/.test(document.querySelector("#teach-status").textContent), null, { timeout: 120_000 });
    const after = await download(page, "Download head");
    assert.ok(after.equals(before), "the same features, so the same head, byte for byte");
    await assertClean(page, errors);
  } finally {
    await context.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
