namespace Consort.OpenAI;
