// validate.js — validates an OpenAPI document with @apidevtools/swagger-parser (the official
// JSON schema of the document's OpenAPI version, plus its own checks). usage: validate.js FILE
const SwaggerParser = require("@apidevtools/swagger-parser");
SwaggerParser.validate(process.argv[2])
  .then((api) => {
    console.log(`valid OpenAPI ${api.openapi}: ${Object.keys(api.paths).length} paths`);
  })
  .catch((e) => {
    console.error(`invalid: ${e.message}`);
    process.exit(1);
  });
