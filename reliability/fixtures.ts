// Where the parts find the shared Hugging Face fixtures (../shared/fixtures/hf, next to the checkout).

import { fileURLToPath } from "node:url";

export const FIXTURES = fileURLToPath(new URL("../../shared/fixtures/hf/", import.meta.url));
