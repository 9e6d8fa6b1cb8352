// Swagger UI over this api's own /openapi.json. Everything is served by the api itself:
// no CDN, and no validator badge (it would fetch validator.swagger.io).
window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: false,
  tryItOutEnabled: false,
  docExpansion: 'none',
  filter: true,
  defaultModelsExpandDepth: 0,
});
